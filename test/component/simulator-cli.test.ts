import { afterEach, describe, expect, it } from 'vitest';
import type { RunningSimulator } from '../../simulator/app';
import { runSimulatorCli } from '../../simulator/main';
import { queryBillData } from '../../simulator/test-kit';

const ENV = [
  'SIMULATOR_PORT',
  'SIMULATOR_SEED',
  'CCFS_AK',
  'CCFS_SK',
  'SIMULATOR_TIME_ZONE',
  'SIMULATOR_CALLBACK_DELAY_MS',
  'SIMULATOR_FAULTS',
  'SIMULATOR_OPTIONS',
];
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
let running: RunningSimulator | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

const range = {
  beginTime: '2024-03-01 00:00:00',
  endTime: '2024-03-01 06:00:00',
  dataType: 'call',
  callBackURL: 'http://127.0.0.1:9/cb',
};

describe('simulator CLI', () => {
  it('starts from flags and serves signed queries', async () => {
    running = await runSimulatorCli(
      [
        '--port',
        '0',
        '--seed',
        '5',
        '--ak',
        'cli-ak',
        '--sk',
        'cli-sk',
        '--files-per-kind',
        '2',
        '--end-exclusive',
      ],
      {
        handleSignals: false,
      },
    );
    expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await queryBillData(running.url, { ak: 'cli-ak', sk: 'cli-sk' }, range);
    expect(res.json().resultCode).toBe('0');
  });

  it('reads its settings from the environment, flags winning', async () => {
    Object.assign(process.env, {
      SIMULATOR_PORT: '0',
      SIMULATOR_SEED: '7',
      CCFS_AK: 'env-ak',
      CCFS_SK: 'env-sk',
      SIMULATOR_TIME_ZONE: 'Asia/Shanghai',
      SIMULATOR_CALLBACK_DELAY_MS: '5000',
      SIMULATOR_FAULTS: '{"queryFlowControl":1}',
    });
    running = await runSimulatorCli(['--callback-delay-ms', '10'], { handleSignals: false });
    const creds = { ak: 'env-ak', sk: 'env-sk' };
    expect((await queryBillData(running.url, creds, range)).json().resultCode).toBe('0300009');
    running.simulator.setFaults({ queryFlowControl: 0 });
    expect((await queryBillData(running.url, creds, range)).json().resultCode).toBe('0');
    await new Promise((r) => setTimeout(r, 100));
    // Generated after 10 ms (the flag), not 5 s (the environment).
    expect(running.simulator.inspect().files[0]!.generatedAt).toBeDefined();
  });

  it('takes any further setting as --options JSON, so each CC-FS reading has a switch', async () => {
    running = await runSimulatorCli(
      [
        '--port',
        '0',
        '--ak',
        'o-ak',
        '--sk',
        'o-sk',
        '--options',
        '{"maxSpanSeconds":259199,"spanRefusalCode":"0300003"}',
      ],
      { handleSignals: false },
    );
    const creds = { ak: 'o-ak', sk: 'o-sk' };
    // The strict reading of "cannot exceed three days": exactly 72 h is refused, 1 s less is accepted.
    const exact = { ...range, beginTime: '2024-03-01 00:00:00', endTime: '2024-03-04 00:00:00' };
    expect((await queryBillData(running.url, creds, exact)).json().resultCode).toBe('0300003');
    const shorter = { ...exact, endTime: '2024-03-03 23:59:59' };
    expect((await queryBillData(running.url, creds, shorter)).json().resultCode).toBe('0');
  });

  it('refuses an --options name it does not know, naming it', async () => {
    process.env.SIMULATOR_OPTIONS = '{"emptyRnage":"header-only"}';
    const cmd = (await import('../../simulator/main'))
      .simulatorCommand({ handleSignals: false })
      .exitOverride();
    cmd.configureOutput({ writeErr: () => {} });
    await expect(cmd.parseAsync(['--ak', 'a', '--sk', 's'], { from: 'user' })).rejects.toThrow(/emptyRnage/);
  });
});
