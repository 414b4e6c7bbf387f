import { describe, expect, it } from 'vitest';
import {
  CCFS_ERROR_CATEGORY,
  NON_RETRYABLE_CCFS_ERROR_TYPES,
  classifyResult,
  isSpanRefusal,
} from '../../ccfs/errors';

/** Issue 13, input 3: a CC-FS that refuses a chunk's range must be told apart from a wrong request. */
describe('span refusal', () => {
  const refusals: Array<[string, string]> = [
    ['0300004', 'endTime - beginTime exceeds 259200 seconds'],
    ['0300004', 'endTime is wrong'],
    ['0300004', 'the beginTime parameter is out of range'],
    ['0300003', 'endTime too long'],
    ['0300003', 'END_TIME exceeds the limit'],
    ['0300004', 'The query interval cannot exceed three days.'],
    ['0300001', 'time span too long'],
    ['0399999', 'Query range is more than 3 days'],
    ['0300013', 'the period exceeds 72 hours'],
    ['0300004', 'TIME RANGE TOO LARGE'],
    ['0300004', '查询时间间隔不能超过三天'],
    ['0300004', 'beginTime and endTime: interval too long'],
  ];
  it.each(refusals)('classifies %s %j as CcfsSpanRefused', (resultCode, resultDesc) => {
    expect(isSpanRefusal(resultCode, resultDesc)).toBe(true);
    expect(
      classifyResult({ httpStatus: 200, resultCode, resultDesc, operation: 'queryBillData' }),
    ).toMatchObject({
      outcome: 'failure',
      type: 'CcfsSpanRefused',
      category: 'permanent',
    });
  });

  const others: Array<[string, string]> = [
    ['0300004', 'beginTime must be a valid yyyy-MM-dd HH:mm:ss'],
    ['0300004', 'endTime format is invalid'],
    ['0300001', 'beginTime is null'],
    ['0300013', 'beginTime is later than endTime'],
    ['0300003', 'callBackURL is longer than 1024'],
    ['0300003', 'agentId is too long'],
    ['0300004', 'accountId does not belong to this AK'],
    ['0300009', 'query flow control: more than 3 days of queries outstanding'],
    ['0300012', 'no data found'],
    ['0', 'success'],
  ];
  it.each(others)('does not classify %s %j as a span refusal', (resultCode, resultDesc) => {
    expect(isSpanRefusal(resultCode, resultDesc)).toBe(false);
    const c = classifyResult({ httpStatus: 200, resultCode, resultDesc, operation: 'queryBillData' });
    expect(c.outcome === 'failure' ? c.type : c.outcome).not.toBe('CcfsSpanRefused');
  });

  it('is non-retryable: the same range is refused again', () => {
    expect(CCFS_ERROR_CATEGORY.CcfsSpanRefused).toBe('permanent');
    expect(NON_RETRYABLE_CCFS_ERROR_TYPES).toContain('CcfsSpanRefused');
  });
});
