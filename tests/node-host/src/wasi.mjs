// The few WASI pieces Rust's standard library imports, with nothing behind them: no
// environment, no arguments, no working folder, a closed stdin, stdout and stderr into bounded
// sinks that drop what overflows, and `exit` as a trap (never the host's process.exit).
// Randomness for hash seeds and the terminal resource types come from preview2-shim.
import { random, cli } from '@bytecodealliance/preview2-shim';

const CAPTURE_BYTES = 64 * 1024;

class IoError {
  toDebugString() {
    return 'closed';
  }
}

class Pollable {
  ready() {
    return true;
  }
  block() {}
}

const closed = () => {
  throw { tag: 'closed' };
};

class InputStream {
  read() { closed(); }
  blockingRead() { closed(); }
  skip() { closed(); }
  blockingSkip() { closed(); }
  subscribe() { return new Pollable(); }
}

class OutputStream {
  constructor() {
    this.chunks = [];
    this.size = 0;
  }
  #keep(bytes) {
    const room = CAPTURE_BYTES - this.size;
    if (room > 0) {
      const kept = bytes.slice(0, room);
      this.chunks.push(kept);
      this.size += kept.length;
    }
  }
  text() {
    return Buffer.concat(this.chunks.map((c) => Buffer.from(c))).toString('utf8');
  }
  checkWrite() { return 4096n; }
  write(bytes) { this.#keep(bytes); }
  blockingWriteAndFlush(bytes) { this.#keep(bytes); }
  flush() {}
  blockingFlush() {}
  writeZeroes(n) { this.#keep(new Uint8Array(Number(n))); }
  blockingWriteZeroesAndFlush(n) { this.#keep(new Uint8Array(Number(n))); }
  splice() { closed(); }
  blockingSplice() { closed(); }
  subscribe() { return new Pollable(); }
}

/** The WASI import object for one instance; `stderr` keeps what the plugin printed there. */
export function emptyWasi() {
  const stdout = new OutputStream();
  const stderr = new OutputStream();
  const stdin = new InputStream();
  const imports = {
    'wasi:io/error': { Error: IoError },
    'wasi:io/poll': { Pollable, poll: (list) => new Uint32Array(list.map((_, index) => index)) },
    'wasi:io/streams': { InputStream, OutputStream },
    'wasi:cli/environment': { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
    'wasi:cli/exit': {
      exit: () => { throw new Error('the plugin called exit'); },
      exitWithCode: () => { throw new Error('the plugin called exit'); },
    },
    'wasi:cli/stdin': { getStdin: () => stdin },
    'wasi:cli/stdout': { getStdout: () => stdout },
    'wasi:cli/stderr': { getStderr: () => stderr },
    'wasi:cli/terminal-input': cli.terminalInput,
    'wasi:cli/terminal-output': cli.terminalOutput,
    'wasi:cli/terminal-stdin': { getTerminalStdin: () => undefined },
    'wasi:cli/terminal-stdout': { getTerminalStdout: () => undefined },
    'wasi:cli/terminal-stderr': { getTerminalStderr: () => undefined },
    'wasi:random/insecure-seed': random.insecureSeed,
  };
  return { imports, stderr };
}

/** The interfaces (without version) a plugin may import; anything else is refused at load. */
export const ALLOWED_IMPORTS = [
  'soar:restricted-group/types', 'soar:restricted-group/http', 'soar:restricted-group/log', 'soar:restricted-group/wait',
  ...Object.keys(emptyWasi().imports),
];
