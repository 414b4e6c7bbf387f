import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryBillDataAnswer, QUERY_BILL_DATA_PATH } from '../../ccfs/protocol';
import { type RunningSimulator, startSimulator } from '../../simulator/app';
import { signedPost } from '../../simulator/test-kit';
import { fixture, seedJsonAfter } from '../support/seed-examples';

/** Issue 13, item 1: the simulator, over HTTP, accepts the seed's queryBillData request as the page prints it. */

const creds = { ak: 'ak-seed', sk: 'sk-seed' };
let sim: RunningSimulator;

beforeAll(async () => {
  // The seed's callBackURL is not reachable from here: the file is generated long after the test.
  sim = await startSimulator({ port: 0, accounts: [creds], callbackDelayMs: 3_600_000 });
});
afterAll(() => sim.close());

describe('the seed request over HTTP', () => {
  it('accepts the page body byte for byte ("" filters, exactly three days) and answers in the shape of the page', async () => {
    const text = seedJsonAfter('Request parameters');
    const res = await signedPost(sim.url, QUERY_BILL_DATA_PATH, text, { credentials: creds });
    expect(res.status).toBe(200);
    const answer = res.json();
    expect(answer).toMatchObject({ resultCode: '0', resultDesc: 'success' });
    // Every key of the page's response is there, with the same types; the client reads it.
    const page = fixture('query-response').body as Record<string, unknown>;
    for (const key of Object.keys(page)) expect(typeof answer[key]).toBe(typeof page[key]);
    expect(QueryBillDataAnswer.parse(answer).resultData?.responseId).toMatch(/^[0-9a-f]{32}$/);
    const record = sim.simulator.inspect().queries.at(-1)!;
    expect(record).toMatchObject({ outcome: '0', msgBody: { accountId: '', agentId: '', callId: '' } });
  });
});
