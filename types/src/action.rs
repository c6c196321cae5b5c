//! The actions the plugin offers, named once for the plugin, the host, the CLI and the manifest.

named_enum! {
    /// An action a playbook can run.
    pub enum Action;
    TestConnection = "test-connection",
    AddToGroup = "add-to-group",
    RemoveFromGroup = "remove-from-group",
    CheckMembership = "check-membership",
}

impl Action {
    /// Whether the action acts on users (every action but test-connection).
    pub fn takes_users(self) -> bool {
        self != Action::TestConnection
    }

    /// Whether the action may change membership on a provider.
    pub fn changes_state(self) -> bool {
        matches!(self, Action::AddToGroup | Action::RemoveFromGroup)
    }
}
