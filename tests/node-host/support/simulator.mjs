// Starts `soar-host simulator` (SOAR_HOST_BIN) for the Node tests and waits for its base URL.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export async function spawnSimulator(args, token) {
  const binary = process.env.SOAR_HOST_BIN;
  if (!binary) throw new Error('SOAR_HOST_BIN is not set: run the tests with bash scripts/test.sh');
  const child = spawn(binary, ['simulator', '--token-env', 'SIM_TOKEN', ...args], {
    env: { ...process.env, SIM_TOKEN: token },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`simulator exited (${code})`)));
  });
  return { child, baseUrl: JSON.parse(line).base_url };
}
