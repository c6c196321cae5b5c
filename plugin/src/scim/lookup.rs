//! Finding the restricted group and the users, and reading membership, in as few requests as
//! the server allows; every answer is checked so that a server that ignores filters never
//! makes us act on the wrong object.

use crate::scim::client::{is_fatal, says_unsupported, Doing, Outgoing, ScimClient, Sent};
use crate::scim::response::{
    multi_valued_values, parse_error_body, parse_group, parse_list, parse_user, string_attr, Group, ListPage, User,
};
use serde_json::Value;
use soar_types::encode::{eq_filter, filter_string, path_segment, percent_encode, query};
use soar_types::host::{Host, LogLevel};
use soar_types::model::{names_match, ActionError, ErrorKind, Profile, UserRef};

/// Paging stops here: past it a lookup fails with `lookup-limit` rather than scan for ever.
pub const MAX_PAGES: u32 = 100;
/// The longest encoded filter of an `or` lookup: with the base URL and paging, the request line
/// stays under the 8 KB that servers and proxies commonly accept.
pub const MAX_FILTER_BYTES: usize = 6_000;
/// Users asked for in one `or` lookup at most: the answer fits one page of any server (ZPA's
/// pages hold 100).
pub const MAX_USERS_PER_FILTER: usize = 100;
/// Users still unknown above which reading every user (page by page, pages sent together) is
/// weighed against one filter each.
const SCAN_AT_LEAST: usize = 10;
/// `or` lookups from which reading every user is weighed against them first (one request, the
/// first page, answered with the group lookup).
const WEIGH_READING_EVERY_USER_AT: usize = 5;
/// A member id no server holds, to see whether a server honours the member clause of a filter.
const NO_SUCH_MEMBER: &str = "restricted-group-plugin-no-such-member-0c7d91";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Member,
    NotMember,
    /// The server offers no way to read it.
    Unknown,
}

/// A list query's answer: a page, or the server's refusal of the filter.
enum ListAnswer {
    Page(ListPage),
    FilterRejected,
}

/// How a filtered query went: refused, shown to be ignored (a resource that does not match came
/// back), or the matching resources.
enum Filtered {
    Rejected,
    Ignored,
    Matched(Vec<Value>),
}

/// What a user lookup found for one user: the user, nobody, or an error.
pub type Found = Result<Option<User>, ActionError>;

impl<H: Host> ScimClient<'_, H> {
    /// `GET {path}?{params}`. `attributes` and `excludedAttributes` only save bandwidth: a server
    /// that does not take them (400 not about the filter, 405, 501) is asked again without, and
    /// never again with them.
    fn get(
        &mut self,
        path: &str,
        params: &[(&str, &str)],
        doing: Doing,
    ) -> Result<soar_types::host::Response, ActionError> {
        let projected = params.iter().any(|(name, _)| is_projection(name));
        let response = self.send_read(&self.read_path(path, params), doing)?;
        let about_filter =
            parse_error_body(&response.body).scim_type.is_some_and(|t| t.eq_ignore_ascii_case("invalidFilter"));
        if !says_unsupported(response.status) || !projected || self.learned.projection_refused || about_filter {
            return Ok(response);
        }
        self.learned.projection_refused = true;
        let refused = format!("the server refused attributes/excludedAttributes (HTTP {})", response.status);
        self.log(LogLevel::Info, &format!("{refused}; reading whole resources"));
        let plain: Vec<(&str, &str)> = params.iter().copied().filter(|(name, _)| !is_projection(name)).collect();
        self.send_read_because(&with_query(path, &plain), doing, &refused)
    }

    /// `path?params` as [`Self::get`] first sends it: without projection once the server refused it.
    fn read_path(&self, path: &str, params: &[(&str, &str)]) -> String {
        let refused = self.learned.projection_refused;
        let kept: Vec<(&str, &str)> =
            params.iter().copied().filter(|(name, _)| !(refused && is_projection(name))).collect();
        with_query(path, &kept)
    }

    /// The page of `/{resource}?{params}` that starts at `start_index`, as it is asked for.
    fn page_path(&self, resource: &str, params: &[(&str, &str)], start_index: u64) -> String {
        let (start, count) = (start_index.to_string(), self.provider.profile.page_size().to_string());
        let mut paged = params.to_vec();
        paged.extend([("startIndex", start.as_str()), ("count", count.as_str())]);
        self.read_path(&format!("/{resource}"), &paged)
    }

    /// `GET /{resource}?{params}`; with a filter, an answer that it is not taken (400, 405, 501)
    /// means the filter is refused.
    fn get_list(&mut self, resource: &str, params: &[(&str, &str)], doing: Doing) -> Result<ListAnswer, ActionError> {
        let filtered = params.iter().any(|(name, _)| *name == "filter");
        let response = self.get(&format!("/{resource}"), params, doing)?;
        if filtered && says_unsupported(response.status) {
            let why = self.status_error(&response, doing).message;
            self.log(LogLevel::Info, &format!("the server refused the filter: {why}"));
            return Ok(ListAnswer::FilterRejected);
        }
        if response.status == 404 {
            return Err(self.endpoint_missing(resource, doing));
        }
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(&response, doing));
        }
        let body = self.json_body(&response, doing)?;
        parse_list(&body).map(ListAnswer::Page).map_err(|why| self.protocol_error(doing, &why))
    }

    fn endpoint_missing(&self, resource: &str, doing: Doing) -> ActionError {
        ActionError::new(
            ErrorKind::Server,
            format!(
                "{}: nothing answers at {} (HTTP 404) while {doing}; check that base_url is the SCIM endpoint \
                 (for ZPA it ends in /v2)",
                self.idp(),
                self.url(&format!("/{resource}"))
            ),
        )
        .with_status(404)
    }

    /// Pages through `/{resource}?{params}` from the first item, handing each page's resources
    /// to `visit` until it returns false. Follows short pages (servers may lower `count`) until
    /// `totalResults`; past [`MAX_PAGES`] it fails with `lookup-limit`.
    /// `eager`: once the first page tells how many there are, the others are sent together.
    fn for_each_page(
        &mut self,
        resource: &str,
        params: &[(&str, &str)],
        doing: Doing,
        eager: bool,
        // `dyn`: one copy of the paging code, not one per caller.
        visit: &mut dyn FnMut(&[Value]) -> bool,
    ) -> Result<bool, ActionError> {
        let mut start_index: u64 = 1;
        let mut previous_first: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let start = start_index.to_string();
            let count = self.provider.profile.page_size().to_string();
            let mut paged = params.to_vec();
            paged.extend([("startIndex", start.as_str()), ("count", count.as_str())]);
            let page = match self.get_list(resource, &paged, doing)? {
                ListAnswer::Page(page) => page,
                ListAnswer::FilterRejected => return Ok(false),
            };
            let first = page.resources.first().and_then(|r| string_attr(r, "id"));
            if first.is_some() && first == previous_first {
                return Err(self.protocol_error(doing, "the server answers the same page whatever startIndex asks for"));
            }
            if !visit(&page.resources) {
                return Ok(true);
            }
            let length = page.resources.len() as u64;
            if let (true, 1, Some(total)) = (eager, start_index, page.total_results) {
                let starts =
                    (1..MAX_PAGES as u64).map(|n| 1 + n * length).take_while(|start| length > 0 && *start <= total);
                let batch =
                    starts.map(|start| Outgoing::read(&self.page_path(resource, params, start), doing)).collect();
                self.prefetch(batch);
            }
            start_index += length;
            let seen = start_index - 1;
            // Short pages are not the end (servers may lower `count`): `totalResults` is, or an empty page.
            if page.resources.is_empty() || page.total_results.is_some_and(|total| seen >= total) {
                return Ok(true);
            }
            previous_first = first;
        }
        Err(ActionError::new(
            ErrorKind::LookupLimit,
            format!(
                "{}: {doing} read {MAX_PAGES} pages of /{resource} without reaching the end; name the user by \
                 id:SCIM_ID or the group by restricted_group_id, or ask the server's owner to support filters",
                self.idp()
            ),
        ))
    }

    /// Every resource of `/{resource}`, each handed to `visit` until it returns true (done).
    fn scan(
        &mut self,
        resource: &str,
        excluded: Option<&str>,
        doing: Doing,
        eager: bool,
        mut visit: impl FnMut(&Value) -> bool,
    ) -> Result<(), ActionError> {
        let params: Vec<(&str, &str)> = excluded.map(|e| ("excludedAttributes", e)).into_iter().collect();
        self.for_each_page(resource, &params, doing, eager, &mut |items| !items.iter().any(&mut visit))?;
        Ok(())
    }

    /// Whether reading every user takes fewer requests than `lookups` filters: the first page
    /// (kept for the reading) tells how many pages there are.
    fn reading_every_user_is_cheaper(&mut self, lookups: usize) -> bool {
        let first = Outgoing::read(&self.page_path("Users", &[], 1), "counting the users");
        let Ok(Sent::Answer(response)) = self.peek(first) else {
            return false;
        };
        let Ok(page) = serde_json::from_slice::<Value>(&response.body)
            .map_err(drop)
            .and_then(|body| parse_list(&body).map_err(drop))
        else {
            return false;
        };
        match (page.total_results, page.resources.len() as u64) {
            (Some(total), length) if length > 0 => {
                let pages = total.div_ceil(length);
                pages < lookups as u64 && pages <= u64::from(MAX_PAGES)
            }
            _ => false,
        }
    }

    /// A filtered query, every page of it; each resource must pass `accept` (the filter checked
    /// on our side), or the server is taken to ignore filters.
    fn filtered_query(
        &mut self,
        resource: &str,
        filter: &str,
        excluded: Option<&str>,
        doing: Doing,
        accept: &dyn Fn(&Value) -> bool,
    ) -> Result<Filtered, ActionError> {
        let mut params = vec![("filter", filter)];
        params.extend(excluded.map(|e| ("excludedAttributes", e)));
        let mut matched = Vec::new();
        let mut ignored = false;
        let answered = self.for_each_page(resource, &params, doing, false, &mut |items| {
            if items.iter().all(accept) {
                matched.extend(items.iter().cloned());
                true
            } else {
                ignored = true;
                false
            }
        })?;
        Ok(match (answered, ignored) {
            (false, _) => {
                self.explain_next(&format!("the server refused the filter {filter}"));
                Filtered::Rejected
            }
            (true, true) => {
                self.log(LogLevel::Info, &format!("{doing}: the answer ignores the filter"));
                self.explain_next(&format!("the server ignored the filter {filter}"));
                Filtered::Ignored
            }
            (true, false) => Filtered::Matched(matched),
        })
    }

    /// Sends the first requests of finding the group and these users together, one round trip
    /// instead of one each; [`Self::find_group`] and [`Self::find_users`] then take their answers.
    pub fn prefetch_lookups(&mut self, users: &[UserRef]) {
        let mut batch = vec![self.group_lookup()];
        let mut by_attribute: [(Attribute, Vec<(usize, &str)>); 2] =
            [(Attribute::UserName, Vec::new()), (Attribute::ExternalId, Vec::new())];
        let mut ids = Vec::new();
        for (index, user) in users.iter().enumerate() {
            match user {
                UserRef::Id(id) => ids.push((index, id.as_str())),
                UserRef::Email(email) => by_attribute[0].1.push((index, email)),
                UserRef::External(external) => by_attribute[1].1.push((index, external)),
            }
        }
        match ids.as_slice() {
            [(_, id)] => batch.push(self.user_by_id_lookup(id)),
            many => batch.extend(
                filter_chunks(Attribute::Id, many).into_iter().map(|chunk| self.filter_lookup(Attribute::Id, chunk)),
            ),
        }
        let lookups: Vec<Outgoing> = by_attribute
            .iter()
            .flat_map(|(attribute, wanted)| {
                filter_chunks(*attribute, wanted).into_iter().map(|chunk| self.filter_lookup(*attribute, chunk))
            })
            .collect();
        if lookups.len() < WEIGH_READING_EVERY_USER_AT {
            batch.extend(lookups);
            self.prefetch(batch);
            return;
        }
        // Many lookups: the first page of /Users, sent with the group lookup, tells whether reading
        // every user (pages of 1,000 on ZIA) is fewer requests than filtering for them.
        batch.push(Outgoing::read(&self.page_path("Users", &[], 1), "counting the users"));
        self.prefetch(batch);
        self.learned.read_every_user = self.reading_every_user_is_cheaper(lookups.len());
        if !self.learned.read_every_user {
            self.prefetch(lookups);
        }
    }

    /// The first request of finding the group: by id, or by a displayName filter.
    fn group_lookup(&self) -> Outgoing {
        match (&self.provider.restricted_group_id, &self.provider.restricted_group) {
            (Some(id), _) => Outgoing::read(
                &self.read_path(&format!("/Groups/{}", path_segment(id)), &[("excludedAttributes", "members")]),
                &format!("reading the group with id {id}"),
            ),
            (None, name) => {
                let name = name.as_deref().unwrap_or_default();
                let filter = eq_filter("displayName", name);
                let params = [("filter", filter.as_str()), ("excludedAttributes", "members")];
                Outgoing::read(&self.page_path("Groups", &params, 1), &format!("looking up the group \"{name}\""))
            }
        }
    }

    fn user_by_id_lookup(&self, id: &str) -> Outgoing {
        Outgoing::read(&self.read_path(&format!("/Users/{}", path_segment(id)), &[]), &format!("reading user id:{id}"))
    }

    /// The first page of a filtered lookup of these users.
    fn filter_lookup(&self, attribute: Attribute, users: &[(usize, &str)]) -> Outgoing {
        let (filter, doing) = user_filter(attribute, users);
        Outgoing::read(&self.page_path("Users", &[("filter", filter.as_str())], 1), &doing)
    }

    /// The restricted group, by id or by displayName (case-insensitive; exactly one).
    pub fn find_group(&mut self) -> Result<Group, ActionError> {
        if let Some(id) = self.provider.restricted_group_id.clone() {
            return self.group_by_id(&id);
        }
        let name = self.provider.restricted_group.clone().unwrap_or_default();
        let doing = format!("looking up the group \"{name}\"");
        let filter = eq_filter("displayName", &name);
        let named = |resource: &Value| same_text(string_attr(resource, "displayName").as_deref(), &name);
        let mut matches: Vec<Group> = match self.filtered_query("Groups", &filter, Some("members"), &doing, &named)? {
            Filtered::Matched(resources) => resources.iter().filter_map(parse_group).collect(),
            Filtered::Ignored => {
                self.learned.filters_ignored = true;
                Vec::new()
            }
            Filtered::Rejected => Vec::new(),
        };
        // A refused or ignored filter, or none found (the server may compare case-sensitively):
        // read every group and compare here.
        if matches.is_empty() {
            self.scan("Groups", Some("members"), &doing, false, |resource| {
                if let Some(group) = parse_group(resource) {
                    if same_text(group.display_name.as_deref(), &name) {
                        matches.push(group);
                    }
                }
                false
            })?;
        }
        dedup_by_id(&mut matches, |group| &group.id);
        match matches.len() {
            0 => Err(ActionError::new(
                ErrorKind::GroupNotFound,
                format!(
                    "{}: no group named \"{name}\"; create it and sync it from the identity provider, or fix \
                     restricted_group",
                    self.idp()
                ),
            )),
            1 => Ok(matches.remove(0)),
            _ => {
                let ids: Vec<String> = matches.into_iter().map(|group| group.id).collect();
                let mut error = ActionError::new(
                    ErrorKind::AmbiguousGroup,
                    format!(
                        "{}: {} groups are named \"{name}\" (ids {}); set restricted_group_id to the one to use",
                        self.idp(),
                        ids.len(),
                        ids.join(", ")
                    ),
                );
                error.ids = Some(ids);
                Err(error)
            }
        }
    }

    fn group_by_id(&mut self, id: &str) -> Result<Group, ActionError> {
        let doing = format!("reading the group with id {id}");
        let path = format!("/Groups/{}", path_segment(id));
        let response = self.get(&path, &[("excludedAttributes", "members")], &doing)?;
        if response.status == 404 {
            // Either no such group or a wrong base URL: one list request tells which.
            let params = [("startIndex", "1"), ("count", "1"), ("excludedAttributes", "members")];
            self.get_list("Groups", &params, &doing)?;
            return Err(ActionError::new(
                ErrorKind::GroupNotFound,
                format!("{}: no group has id {id}; fix restricted_group_id", self.idp()),
            )
            .with_status(404));
        }
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(&response, &doing));
        }
        let body = self.json_body(&response, &doing)?;
        match parse_group(&body) {
            Some(group) if group.id == id => Ok(group),
            Some(group) => Err(self.protocol_error(&doing, &format!("the server answered with group {}", group.id))),
            None => Err(self.protocol_error(&doing, "the answer is not a group (no id)")),
        }
    }

    /// Each user as the caller named it: found, not in this provider, or an error.
    pub fn find_users(&mut self, users: &[UserRef]) -> Vec<Found> {
        let mut found: Vec<Option<Found>> = vec![None; users.len()];
        let mut emails = Vec::new();
        let mut externals = Vec::new();
        let mut ids = Vec::new();
        for (index, user) in users.iter().enumerate() {
            match user {
                UserRef::Id(id) => ids.push((index, id.as_str())),
                UserRef::Email(email) => emails.push((index, email.as_str())),
                UserRef::External(external) => externals.push((index, external.as_str())),
            }
        }
        self.users_by_ids(&ids, &mut found);
        self.users_by_attribute(Attribute::UserName, &emails, &mut found);
        self.users_by_attribute(Attribute::ExternalId, &externals, &mut found);
        found.into_iter().map(|entry| entry.expect("every user was looked up")).collect()
    }

    pub fn user_by_id(&mut self, id: &str) -> Found {
        let doing = format!("reading user id:{id}");
        let response = self.get(&format!("/Users/{}", path_segment(id)), &[], &doing)?;
        if response.status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(&response, &doing));
        }
        let body = self.json_body(&response, &doing)?;
        match parse_user(&body) {
            Some(user) if user.id == id => Ok(Some(user)),
            Some(user) => Err(self.protocol_error(&doing, &format!("the server answered with user {}", user.id))),
            None => Err(self.protocol_error(&doing, "the answer is not a user (no id)")),
        }
    }

    /// Reads users by SCIM id: several in one `id eq .. or ..` filter (ZIA documents `id eq`),
    /// then those it did not find one by one (`GET /Users/{id}`, sent together), which is also
    /// the way for a lone id and for a server that refuses or ignores the filter.
    fn users_by_ids(&mut self, wanted: &[(usize, &str)], found: &mut [Option<Found>]) {
        if wanted.len() > 1 && !self.filters_unusable() && !self.learned.id_filter_unusable {
            for chunk in filter_chunks(Attribute::Id, wanted) {
                let (filter, doing) = user_filter(Attribute::Id, chunk);
                let values: Vec<&str> = chunk.iter().map(|(_, value)| *value).collect();
                match self.filtered_users(&filter, &values, Attribute::Id, &doing) {
                    Some(Ok(users)) => {
                        for (index, value) in chunk {
                            let candidates: Vec<&User> =
                                users.iter().filter(|user| Attribute::Id.matches(user, value)).collect();
                            if !candidates.is_empty() {
                                found[*index] = Some(self.pick(Attribute::Id, value, candidates));
                            }
                        }
                    }
                    Some(Err(error)) if !error_is_about_filter(&error) => {
                        for (index, _) in chunk {
                            found[*index] = Some(Err(error.clone()));
                        }
                    }
                    _ => {
                        self.learned.id_filter_unusable = true;
                        break;
                    }
                }
            }
        }
        let rest: Vec<&str> = wanted.iter().filter(|(index, _)| found[*index].is_none()).map(|(_, id)| *id).collect();
        let batch = rest.iter().map(|id| self.user_by_id_lookup(id)).collect();
        self.prefetch(batch);
        for (index, id) in wanted {
            if found[*index].is_none() {
                found[*index] = Some(self.user_by_id(id));
            }
        }
    }

    /// Looks users up by userName or externalId: several in one `or` filter, then one filter
    /// each for those the batch did not find, then (when filters are refused or ignored) by
    /// reading pages.
    fn users_by_attribute(&mut self, attribute: Attribute, wanted: &[(usize, &str)], found: &mut [Option<Found>]) {
        if wanted.is_empty() {
            return;
        }
        let read_everyone = self.learned.read_every_user;
        if wanted.len() > 1 && !self.filters_unusable() && !self.learned.or_filter_unusable && !read_everyone {
            for chunk in filter_chunks(attribute, wanted) {
                let (filter, doing) = user_filter(attribute, chunk);
                let values: Vec<&str> = chunk.iter().map(|(_, value)| *value).collect();
                match self.filtered_users(&filter, &values, attribute, &doing) {
                    Some(Ok(users)) => {
                        for (index, value) in chunk {
                            let answered = users.iter().any(|user| attribute.matches_ignoring_case(user, value));
                            let candidates: Vec<&User> =
                                users.iter().filter(|user| attribute.matches(user, value)).collect();
                            if !candidates.is_empty() {
                                found[*index] = Some(self.pick(attribute, value, candidates));
                            } else if answered {
                                // The server matched it but for case (externalId is case-exact):
                                // it answered for this value, and the answer is nobody.
                                found[*index] = Some(Ok(None));
                            }
                        }
                    }
                    Some(Err(error)) if !error_is_about_filter(&error) => {
                        for (index, _) in chunk {
                            found[*index] = Some(Err(error.clone()));
                        }
                    }
                    _ => {
                        self.learned.or_filter_unusable = true;
                        break;
                    }
                }
            }
        }
        // One filter per user still unknown (a batch can miss users on servers that misread `or`),
        // sent together; or, when that is fewer requests, every user read page by page.
        let unknown = wanted.iter().filter(|(index, _)| found[*index].is_none()).count();
        let read_everyone = read_everyone
            || (!self.filters_unusable() && unknown > SCAN_AT_LEAST && self.reading_every_user_is_cheaper(unknown));
        if !self.filters_unusable() && !read_everyone {
            let singles = wanted.iter().filter(|(index, _)| found[*index].is_none());
            let batch = singles.map(|single| self.filter_lookup(attribute, std::slice::from_ref(single))).collect();
            self.prefetch(batch);
        }
        for (index, value) in wanted {
            if found[*index].is_some() || self.filters_unusable() || read_everyone {
                continue;
            }
            let (filter, doing) = user_filter(attribute, &[(*index, *value)]);
            match self.filtered_users(&filter, &[value], attribute, &doing) {
                Some(Ok(users)) => {
                    let candidates: Vec<&User> = users.iter().filter(|user| attribute.matches(user, value)).collect();
                    found[*index] =
                        Some(if candidates.is_empty() { Ok(None) } else { self.pick(attribute, value, candidates) });
                }
                Some(Err(error)) => found[*index] = Some(Err(error)),
                None => {}
            }
        }
        let remaining: Vec<(usize, &str)> =
            wanted.iter().copied().filter(|(index, _)| found[*index].is_none()).collect();
        if remaining.is_empty() {
            return;
        }
        let doing = format!("reading every user to find {} by {}", remaining.len(), attribute.name());
        let mut candidates: Vec<Vec<User>> = vec![Vec::new(); remaining.len()];
        let scanned = self.scan("Users", None, &doing, remaining.len() > SCAN_AT_LEAST, |resource| {
            if let Some(user) = parse_user(resource) {
                for (slot, (_, value)) in remaining.iter().enumerate() {
                    if attribute.matches(&user, value) {
                        candidates[slot].push(user.clone());
                    }
                }
            }
            candidates.iter().all(|list| !list.is_empty())
        });
        for (slot, (index, value)) in remaining.iter().enumerate() {
            found[*index] = Some(match &scanned {
                Ok(()) if candidates[slot].is_empty() => Ok(None),
                Ok(()) => self.pick(attribute, value, candidates[slot].iter().collect()),
                Err(error) => Err(error.clone()),
            });
        }
    }

    /// A filtered user query. `None` when the filter is refused or the answer shows it was
    /// ignored (resources that match none of `values`); the client then stops filtering users.
    fn filtered_users(
        &mut self,
        filter: &str,
        values: &[&str],
        attribute: Attribute,
        doing: Doing,
    ) -> Option<Result<Vec<User>, ActionError>> {
        // A server may compare a case-exact attribute without regard to case: a resource that
        // matches but for case shows the filter was applied, not ignored.
        let wanted = |resource: &Value| {
            parse_user(resource)
                .is_some_and(|user| values.iter().any(|value| attribute.matches_ignoring_case(&user, value)))
        };
        // A multi-user (`or`) query refused or seemingly ignored may only be misread: one filter
        // per user will tell.
        let single = values.len() == 1;
        match self.filtered_query("Users", filter, None, doing, &wanted) {
            Ok(Filtered::Matched(resources)) => Some(Ok(resources.iter().filter_map(parse_user).collect())),
            Ok(Filtered::Rejected) => {
                self.learned.user_filter_rejected |= single;
                None
            }
            Ok(Filtered::Ignored) => {
                self.learned.filters_ignored |= single;
                None
            }
            Err(error) => Some(Err(error)),
        }
    }

    fn filters_unusable(&self) -> bool {
        self.learned.filters_ignored || self.learned.user_filter_rejected
    }

    /// The one user a value names; two is an error the caller must resolve with `id:`.
    fn pick(&self, attribute: Attribute, value: &str, mut candidates: Vec<&User>) -> Found {
        dedup_by_id(&mut candidates, |user| &user.id);
        let exact: Vec<&&User> = candidates.iter().filter(|user| attribute.matches_exactly(user, value)).collect();
        match (candidates.len(), exact.len()) {
            (1, _) => Ok(Some(candidates[0].clone())),
            (_, 1) => Ok(Some((*exact[0]).clone())),
            _ => {
                let ids: Vec<String> = candidates.iter().map(|user| user.id.clone()).collect();
                Err(ActionError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{}: {} users match {} (ids {}); name the user as id:SCIM_ID",
                        self.idp(),
                        candidates.len(),
                        attribute.describe(value),
                        ids.join(", ")
                    ),
                ))
            }
        }
    }

    /// Whether each user is in `group`, in as few round trips as the server allows: from each
    /// user's own `groups` list where the server fills it; else from the group's members, read
    /// once for everyone; else (a server that lists no members) one membership filter each,
    /// sent together.
    pub fn memberships(&mut self, group: &Group, users: &[&User]) -> Vec<Result<Membership, ActionError>> {
        let without_groups: Vec<&User> = users.iter().copied().filter(|user| user.groups.is_none()).collect();
        if !without_groups.is_empty() {
            match self.group_members(group) {
                Err(error) if is_fatal(error.kind) => {
                    let failed = |user: &&User| user.groups.is_none().then(|| Err(error.clone()));
                    return users
                        .iter()
                        .map(|user| failed(user).unwrap_or_else(|| self.membership(group, user)))
                        .collect();
                }
                // No members listed, or too many to read (larger than the host takes, say): the
                // membership filters instead.
                Err(_) | Ok(None) if !self.learned.membership_filter_unusable && !self.learned.filters_ignored => {
                    let mut batch: Vec<Outgoing> =
                        without_groups.iter().map(|user| self.membership_lookup(group, &user.id)).collect();
                    if !self.learned.member_clause_honoured {
                        batch.push(self.membership_lookup(group, NO_SUCH_MEMBER));
                    }
                    self.prefetch(batch);
                }
                Err(_) | Ok(_) => {}
            }
        }
        users.iter().map(|user| self.membership(group, user)).collect()
    }

    /// Whether `user` is in `group`: from the user's own `groups` list when the server fills it,
    /// else from the group's members when they were read already, else a filtered group query,
    /// else the group's members.
    pub fn membership(&mut self, group: &Group, user: &User) -> Result<Membership, ActionError> {
        if let Some(groups) = &user.groups {
            return Ok(membership_of(groups.contains(&group.id)));
        }
        if let Some(Some(members)) = &self.learned.group_members {
            return Ok(membership_of(members.contains(&user.id)));
        }
        if !self.learned.membership_filter_unusable && !self.learned.filters_ignored {
            match self.group_filtered_by_member(group, &user.id)? {
                // A match may come from a server that ignores the member clause: it counts once
                // a member who cannot exist is seen not to match.
                Some(true) if self.member_clause_honoured(group)? => return Ok(Membership::Member),
                Some(false) => return Ok(Membership::NotMember),
                _ => self.learned.membership_filter_unusable = true,
            }
        }
        match self.group_members(group)? {
            Some(members) => Ok(membership_of(members.contains(&user.id))),
            None => Ok(Membership::Unknown),
        }
    }

    /// Whether the group filter `id eq G and members[value eq M]` finds the group; `None` when
    /// the server refuses or ignores the filter.
    /// The first page of the group filter that finds `group` only when `member_id` is a member.
    fn membership_lookup(&self, group: &Group, member_id: &str) -> Outgoing {
        let (filter, doing) =
            (membership_filter(self.provider.profile, group, member_id), membership_doing(group, member_id));
        Outgoing::read(
            &self.page_path("Groups", &[("filter", filter.as_str()), ("excludedAttributes", "members")], 1),
            &doing,
        )
    }

    fn group_filtered_by_member(&mut self, group: &Group, member_id: &str) -> Result<Option<bool>, ActionError> {
        let doing = membership_doing(group, member_id);
        let filter = membership_filter(self.provider.profile, group, member_id);
        // A server that returns members anyway shows whether it honoured the member clause.
        let same_group = |resource: &Value| {
            string_attr(resource, "id").as_deref() == Some(group.id.as_str())
                && multi_valued_values(resource, "members").is_none_or(|members| members.iter().any(|m| m == member_id))
        };
        match self.filtered_query("Groups", &filter, Some("members"), &doing, &same_group) {
            Ok(Filtered::Matched(resources)) => Ok(Some(!resources.is_empty())),
            Ok(Filtered::Ignored) => {
                self.learned.filters_ignored = true;
                Ok(None)
            }
            Ok(Filtered::Rejected) => Ok(None),
            Err(error) if error.kind != ErrorKind::Server && error.kind != ErrorKind::Protocol => Err(error),
            Err(_) => Ok(None),
        }
    }

    /// Whether the server honours the member clause of group filters, asked once per action
    /// about a member id no server holds: a server that still finds the group ignores the
    /// clause, and its matches mean nothing (the caller then stops using the filter).
    fn member_clause_honoured(&mut self, group: &Group) -> Result<bool, ActionError> {
        if !self.learned.member_clause_honoured {
            self.learned.member_clause_honoured = self.group_filtered_by_member(group, NO_SUCH_MEMBER)? == Some(false);
            if !self.learned.member_clause_honoured {
                self.log(
                    LogLevel::Info,
                    "the server ignores the member clause of group filters: reading members instead",
                );
            }
        }
        Ok(self.learned.member_clause_honoured)
    }

    /// The group's members, read once per action; `None` when the server does not list them. A
    /// group that leaves `members` out is empty when the server is seen to list members
    /// ([`Self::members_listed`]); without that evidence absence proves nothing.
    fn group_members(&mut self, group: &Group) -> Result<Option<Vec<String>>, ActionError> {
        if let Some(members) = &self.learned.group_members {
            return Ok(members.clone());
        }
        let doing = format!("reading the members of group {}", group.id);
        let path = format!("/Groups/{}", path_segment(&group.id));
        let response = self.get(&path, &[("attributes", "members")], &doing)?;
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(&response, &doing));
        }
        let body = self.json_body(&response, &doing)?;
        let members = match multi_valued_values(&body, "members") {
            Some(members) => {
                if !members.is_empty() {
                    self.learned.members_listed = Some(Some(format!("it listed the members of group {}", group.id)));
                }
                Some(members)
            }
            None => match self.members_listed(group)? {
                Some(evidence) => {
                    self.log(LogLevel::Info, &format!("group {} lists no members: it has none ({evidence})", group.id));
                    Some(Vec::new())
                }
                None => {
                    self.log(
                        LogLevel::Warn,
                        &format!(
                            "group {} lists no members, and nothing shows that this server lists members: \
                             membership cannot be verified",
                            group.id
                        ),
                    );
                    None
                }
            },
        };
        self.learned.group_members = Some(members.clone());
        Ok(members)
    }

    /// Why this server can be taken to list a group's members when it has any, if anything
    /// shows it: a group listing members earlier in this action, another group listing members
    /// on the first page of groups, or the server's Group schema returning `members`.
    fn members_listed(&mut self, group: &Group) -> Result<Option<String>, ActionError> {
        if let Some(evidence) = &self.learned.members_listed {
            return Ok(evidence.clone());
        }
        let doing = "looking for a group that lists its members";
        let page = self.page_path("Groups", &[("attributes", "members")], 1);
        let listed = match self.send_read(&page, doing) {
            Ok(response) if (200..300).contains(&response.status) => serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|body| parse_list(&body).ok())
                .and_then(|page| {
                    page.resources.iter().find_map(|resource| {
                        let id = string_attr(resource, "id").filter(|id| *id != group.id)?;
                        multi_valued_values(resource, "members")
                            .filter(|members| !members.is_empty())
                            .map(|_| format!("group {id} lists its members"))
                    })
                }),
            Ok(_) => None,
            Err(error) if is_fatal(error.kind) => return Err(error),
            Err(_) => None,
        };
        let evidence = match listed {
            Some(evidence) => Some(evidence),
            None => self.schema_returns_members()?,
        };
        self.learned.members_listed = Some(evidence.clone());
        Ok(evidence)
    }

    /// Whether the server's Group schema says `members` is returned (anything but `never`).
    fn schema_returns_members(&mut self) -> Result<Option<String>, ActionError> {
        let doing = "reading the server's Group schema";
        let response = match self.send_read("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", doing) {
            Ok(response) => response,
            Err(error) if is_fatal(error.kind) => return Err(error),
            Err(_) => return Ok(None),
        };
        if !(200..300).contains(&response.status) {
            return Ok(None);
        }
        let Ok(schema) = serde_json::from_slice::<Value>(&response.body) else { return Ok(None) };
        let members = schema["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["name"].as_str().is_some_and(|name| name.eq_ignore_ascii_case("members")));
        let returned = members.and_then(|attribute| attribute["returned"].as_str()).unwrap_or("default");
        Ok((members.is_some() && !returned.eq_ignore_ascii_case("never"))
            .then(|| format!("its Group schema returns members ({returned})")))
    }

    /// The ids of the group's members, and whether the list is complete: the group's own
    /// `members` when the server lists them; else every user read page by page, keeping those
    /// whose `groups` name the group (complete only when every user carries `groups`).
    pub fn members_of(&mut self, group: &Group) -> Result<(Vec<String>, bool), ActionError> {
        match self.group_members(group) {
            Ok(Some(members)) => return Ok((members, true)),
            Err(error) if is_fatal(error.kind) => return Err(error),
            Ok(None) | Err(_) => {}
        }
        let doing = format!("reading every user for the members of group {}", group.id);
        let (mut members, mut every_user_says) = (Vec::new(), true);
        let scanned = self.scan("Users", None, &doing, true, |resource| {
            match parse_user(resource) {
                Some(User { id, groups: Some(groups), .. }) if groups.contains(&group.id) => members.push(id),
                Some(User { groups: None, .. }) => every_user_says = false,
                _ => {}
            }
            false
        });
        match scanned {
            Ok(()) => Ok((members, every_user_says)),
            Err(error) if is_fatal(error.kind) => Err(error),
            Err(_) => Ok((members, false)),
        }
    }

    /// Reads membership again when a change's result is in doubt (a conflict, a lost answer):
    /// fresh users, fresh group members.
    pub fn reread_memberships(&mut self, group: &Group, users: &[&User]) -> Vec<Result<Membership, ActionError>> {
        self.learned.group_members = None;
        let rereads =
            users.iter().filter(|user| user.groups.is_some()).map(|user| self.user_by_id_lookup(&user.id)).collect();
        self.prefetch(rereads);
        users
            .iter()
            .map(|user| {
                let fresh = match user.groups {
                    Some(_) => self.user_by_id(&user.id)?.unwrap_or_else(|| (*user).clone()),
                    None => (*user).clone(),
                };
                self.membership(group, &fresh)
            })
            .collect()
    }
}

fn is_projection(name: &str) -> bool {
    name == "attributes" || name == "excludedAttributes"
}

/// `path?name=value&...`, each value percent-encoded.
fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    match pairs {
        [] => path.to_string(),
        _ => format!("{path}?{}", query(pairs)),
    }
}

fn membership_doing(group: &Group, member_id: &str) -> String {
    format!("checking whether user {member_id} is in group {}", group.id)
}

/// The group filter that finds `group` only when `user` is a member: the RFC 7644 form, or on
/// ZIA the form its documentation lists (`displayName eq .. and members.value eq ..`), since ZIA
/// documents no `id` filter on groups.
fn membership_filter(profile: Profile, group: &Group, member_id: &str) -> String {
    match (profile, &group.display_name) {
        (Profile::Zia, Some(name)) => {
            format!("displayName eq {} and members.value eq {}", filter_string(name), filter_string(member_id))
        }
        _ => format!("id eq {} and members[value eq {}]", filter_string(&group.id), filter_string(member_id)),
    }
}

/// Keeps the first of each id: a server that lists a resource twice still names one resource.
fn dedup_by_id<T>(items: &mut Vec<T>, id: impl Fn(&T) -> &String) {
    let mut seen: Vec<String> = Vec::new();
    items.retain(|item| {
        let fresh = !seen.contains(id(item));
        if fresh {
            seen.push(id(item).clone());
        }
        fresh
    });
}

fn membership_of(is_member: bool) -> Membership {
    if is_member {
        Membership::Member
    } else {
        Membership::NotMember
    }
}

/// The filter that looks up these users by `attribute`, and what asking it is called.
fn user_filter(attribute: Attribute, users: &[(usize, &str)]) -> (String, String) {
    let filter = users.iter().map(|(_, value)| eq_filter(attribute.name(), value)).collect::<Vec<_>>().join(" or ");
    let doing = match users {
        [(_, value)] => format!("looking up user {}", attribute.describe(value)),
        many => format!("looking up {} users by {}", many.len(), attribute.name()),
    };
    (filter, doing)
}

/// The users split into `or` lookups whose encoded filter stays within [`MAX_FILTER_BYTES`].
fn filter_chunks<'u, 'v>(attribute: Attribute, users: &'u [(usize, &'v str)]) -> Vec<&'u [(usize, &'v str)]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, (_, value)) in users.iter().enumerate() {
        // ` or ` between terms: `%20or%20`.
        let term = percent_encode(&eq_filter(attribute.name(), value)).len() + 8;
        if index > start && (bytes + term > MAX_FILTER_BYTES || index - start == MAX_USERS_PER_FILTER) {
            chunks.push(&users[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += term;
    }
    if start < users.len() {
        chunks.push(&users[start..]);
    }
    chunks
}

/// Server errors and unparsable answers to an `or` filter may mean the server cannot
/// evaluate it; one filter per user is then worth trying.
fn error_is_about_filter(error: &ActionError) -> bool {
    matches!(error.kind, ErrorKind::Server | ErrorKind::Protocol)
}

/// Whether a resource's userName or displayName names `b` (see [`names_match`]).
fn same_text(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| names_match(a, b))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attribute {
    UserName,
    ExternalId,
    Id,
}

impl Attribute {
    fn name(self) -> &'static str {
        match self {
            Attribute::UserName => "userName",
            Attribute::ExternalId => "externalId",
            Attribute::Id => "id",
        }
    }

    fn value(self, user: &User) -> Option<&str> {
        match self {
            Attribute::UserName => user.user_name.as_deref(),
            Attribute::ExternalId => user.external_id.as_deref(),
            Attribute::Id => Some(user.id.as_str()),
        }
    }

    /// userName compares case-insensitively; externalId is case-exact (RFC 7643).
    fn matches(self, user: &User, value: &str) -> bool {
        match self {
            Attribute::UserName => same_text(self.value(user), value),
            Attribute::ExternalId | Attribute::Id => self.matches_exactly(user, value),
        }
    }

    fn matches_exactly(self, user: &User, value: &str) -> bool {
        self.value(user) == Some(value)
    }

    /// Whether a server that compares without regard to case would take `user` for `value`.
    fn matches_ignoring_case(self, user: &User, value: &str) -> bool {
        same_text(self.value(user), value)
    }

    fn describe(self, value: &str) -> String {
        match self {
            Attribute::UserName => value.to_string(),
            Attribute::ExternalId => format!("external:{value}"),
            Attribute::Id => format!("id:{value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::scripted::{provider, Scripted};
    use serde_json::json;
    use soar_types::host::HttpError;
    use soar_types::model::Provider;

    fn page(ids: &[&str], total: Option<u64>) -> Value {
        let resources: Vec<Value> =
            ids.iter().map(|id| json!({"id": id, "userName": format!("{id}@corp.example")})).collect();
        match total {
            Some(total) => json!({"totalResults": total, "Resources": resources}),
            None => json!({"Resources": resources}),
        }
    }

    fn restricted_group() -> Group {
        Group { id: "g1".into(), display_name: Some("Restricted".into()) }
    }

    fn user_without_groups() -> User {
        User { id: "u1".into(), user_name: None, external_id: None, groups: None }
    }

    #[test]
    fn on_zia_membership_is_asked_with_the_documented_group_filter() {
        let found = json!({"totalResults": 1, "Resources": [{"id": "g1", "displayName": "Restricted"}]});
        let none = json!({"totalResults": 0, "Resources": []});
        let mut server = Scripted::ok(vec![found, none]);
        let provider = Provider { profile: Profile::Zia, ..provider() };
        let membership =
            ScimClient::new(&mut server, &provider, 0).membership(&restricted_group(), &user_without_groups());
        assert_eq!(membership.unwrap(), Membership::Member);
        let url = &server.seen[0].url;
        assert!(
            url.contains("filter=displayName%20eq%20%22Restricted%22%20and%20members.value%20eq%20%22u1%22"),
            "{url}"
        );
        assert!(server.seen[1].url.contains(NO_SUCH_MEMBER), "the match is confirmed by a member no server holds");
    }

    #[test]
    fn a_server_ignoring_the_member_clause_is_caught_and_members_are_read() {
        let found = json!({"totalResults": 1, "Resources": [{"id": "g1", "displayName": "Restricted"}]});
        let group_with_members = json!({"id": "g1", "displayName": "Restricted", "members": [{"value": "u2"}]});
        let mut server = Scripted::ok(vec![found.clone(), found, group_with_members]);
        let provider = provider();
        let membership =
            ScimClient::new(&mut server, &provider, 0).membership(&restricted_group(), &user_without_groups());
        assert_eq!(membership.unwrap(), Membership::NotMember, "alice is not among the members actually listed");
        assert!(server.seen[2].url.contains("/Groups/g1"), "{}", server.seen[2].url);
    }

    #[test]
    fn members_too_many_to_read_are_asked_about_by_filter() {
        let found = json!({"totalResults": 1, "Resources": [{"id": "g1", "displayName": "Restricted"}]});
        let none = json!({"totalResults": 0, "Resources": []});
        let too_large = HttpError::TooLarge("the answer exceeds 8388608 bytes".into());
        let mut server = Scripted::answering(vec![Err(too_large), Ok((200, found)), Ok((200, none))]);
        let provider = provider();
        let user = user_without_groups();
        let memberships = ScimClient::new(&mut server, &provider, 0).memberships(&restricted_group(), &[&user]);
        assert_eq!(memberships, [Ok(Membership::Member)]);
        assert!(server.seen[1].url.contains("members%5Bvalue%20eq%20%22u1%22%5D"), "{:?}", server.lines());
    }

    #[test]
    fn without_total_results_pages_are_read_until_an_empty_one() {
        let mut server = Scripted::ok(vec![page(&["a"], None), page(&["b"], None), page(&[], None)]);
        let provider = provider();
        let mut scim = ScimClient::new(&mut server, &provider, 0);
        let mut ids = Vec::new();
        scim.scan("Users", None, "reading", false, |r| {
            ids.push(string_attr(r, "id").unwrap());
            false
        })
        .unwrap();
        assert_eq!(ids, ["a", "b"]);
        let starts: Vec<&str> =
            server.seen.iter().map(|r| r.url.split("startIndex=").nth(1).unwrap().split('&').next().unwrap()).collect();
        assert_eq!(starts, ["1", "2", "3"]);
    }

    #[test]
    fn a_server_that_ignores_start_index_is_caught_not_looped() {
        let answers = vec![page(&["a", "b"], Some(10)); 5];
        let mut server = Scripted::ok(answers);
        let provider = provider();
        let mut scim = ScimClient::new(&mut server, &provider, 0);
        let error = scim.scan("Users", None, "reading every user", false, |_| false).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Protocol);
        assert!(error.message.contains("same page"), "{}", error.message);
        assert_eq!(server.seen.len(), 2);
    }

    fn group_without_members() -> Value {
        json!({"id": "g1", "displayName": "Restricted"})
    }

    #[test]
    fn a_group_without_members_is_empty_when_another_group_shows_the_server_lists_them() {
        let others = json!({"totalResults": 2, "Resources": [
            {"id": "g1", "displayName": "Restricted"},
            {"id": "g2", "displayName": "Finance", "members": [{"value": "u9"}]}]});
        let mut server = Scripted::ok(vec![group_without_members(), others]);
        let provider = provider();
        let user = user_without_groups();
        let memberships = ScimClient::new(&mut server, &provider, 0).memberships(&restricted_group(), &[&user]);
        assert_eq!(memberships, [Ok(Membership::NotMember)]);
        assert_eq!(server.seen.len(), 2, "{:?}", server.lines());
        assert!(server.seen[1].url.contains("/Groups?attributes=members"), "{:?}", server.lines());
    }

    #[test]
    fn a_group_without_members_is_empty_when_the_schema_says_members_are_returned() {
        let no_members = json!({"totalResults": 1, "Resources": [{"id": "g1", "displayName": "Restricted"}]});
        let schema = json!({"id": "urn:ietf:params:scim:schemas:core:2.0:Group", "attributes": [
            {"name": "displayName", "returned": "default"}, {"name": "members", "returned": "default"}]});
        let mut server = Scripted::ok(vec![group_without_members(), no_members, schema]);
        let provider = provider();
        let user = user_without_groups();
        let memberships = ScimClient::new(&mut server, &provider, 0).memberships(&restricted_group(), &[&user]);
        assert_eq!(memberships, [Ok(Membership::NotMember)]);
        assert!(server.seen[2].url.ends_with("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group"));
    }

    #[test]
    fn without_evidence_that_members_are_listed_absence_proves_nothing() {
        let no_members = json!({"totalResults": 1, "Resources": [{"id": "g1", "displayName": "Restricted"}]});
        let schema = json!({"attributes": [{"name": "members", "returned": "never"}]});
        let refused = json!({"status": "400", "scimType": "invalidFilter"});
        let mut server = Scripted::new(vec![
            (200, group_without_members()),
            (200, no_members),
            (200, schema),
            (400, refused.clone()),
            (400, refused),
        ]);
        let provider = provider();
        let user = user_without_groups();
        let memberships = ScimClient::new(&mut server, &provider, 0).memberships(&restricted_group(), &[&user]);
        assert_eq!(memberships, [Ok(Membership::Unknown)], "{:?}", server.lines());
    }

    #[test]
    fn an_external_id_matched_but_for_case_is_nobody_in_one_request() {
        let answer = json!({"totalResults": 1, "Resources": [
            {"id": "u2", "userName": "bob@corp.example", "externalId": "ext-bob"}]});
        let mut server = Scripted::ok(vec![answer.clone()]);
        let provider = provider();
        let found = ScimClient::new(&mut server, &provider, 0).find_users(&[UserRef::External("EXT-BOB".into())]);
        assert_eq!(found, [Ok(None)]);
        assert_eq!(server.seen.len(), 1, "{:?}", server.lines());
        // Two users in one `or` lookup: the one matched but for case is nobody, the other is found.
        let both = json!({"totalResults": 2, "Resources": [
            {"id": "u2", "userName": "bob@corp.example", "externalId": "ext-bob"},
            {"id": "u3", "userName": "eve@corp.example", "externalId": "EXT-EVE"}]});
        let mut server = Scripted::ok(vec![both]);
        let wanted = [UserRef::External("EXT-BOB".into()), UserRef::External("EXT-EVE".into())];
        let found = ScimClient::new(&mut server, &provider, 0).find_users(&wanted);
        assert_eq!(found[0], Ok(None));
        assert_eq!(found[1].as_ref().unwrap().as_ref().unwrap().id, "u3");
        assert_eq!(server.seen.len(), 1, "{:?}", server.lines());
    }
}
