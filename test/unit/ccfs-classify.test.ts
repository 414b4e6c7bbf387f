import { describe, expect, it } from 'vitest';
import {
  CCFS_ERROR_CATEGORY,
  CcfsError,
  CcfsErrorType,
  NON_RETRYABLE_CCFS_ERROR_TYPES,
  RESULT_CODES,
  classifyResult,
  classifyTransportError,
  errorFromClassification,
  type ResultClassification,
} from '../../ccfs/errors';
import { ResultCode } from '../../ccfs/protocol';

type Expected = ResultClassification['outcome'] | CcfsErrorType;

function summary(c: ResultClassification): Expected {
  return c.outcome === 'failure' ? c.type : c.outcome;
}

// Every code of docs/ccfs-protocol.md §6, as answered to queryBillData with HTTP 200.
const documented: Array<[string, Expected, string]> = [
  ['0', 'success', 'success'],
  ['0300001', 'CcfsBadRequest', 'permanent'],
  ['0300002', 'CcfsBadRequest', 'permanent'],
  ['0300003', 'CcfsBadRequest', 'permanent'],
  ['0300004', 'CcfsBadRequest', 'permanent'],
  ['0300005', 'CcfsBadRequest', 'permanent'],
  ['0300006', 'CcfsBadRequest', 'permanent'],
  ['0300007', 'CcfsBadRequest', 'permanent'],
  ['0300008', 'CcfsFlowControl', 'retryable'],
  ['0300009', 'CcfsFlowControl', 'retryable'],
  ['0300010', 'CcfsBadRequest', 'permanent'],
  ['0300011', 'CcfsFileNotFound', 'file-not-found'],
  ['0300012', 'empty', 'empty'],
  ['0300013', 'CcfsBadRequest', 'permanent'],
];

describe('classifyResult', () => {
  it('covers every result code the protocol documents', () => {
    const codes = Object.values(ResultCode).sort();
    expect(documented.map(([code]) => code).sort()).toEqual(codes);
  });

  it.each(documented)(
    'classifies HTTP 200 with resultCode %s as %s (%s)',
    (resultCode, expected, category) => {
      const c = classifyResult({ httpStatus: 200, resultCode, operation: 'queryBillData' });
      expect(summary(c)).toBe(expected);
      if (c.outcome === 'failure') expect(c.category).toBe(category);
    },
  );

  it.each(documented.filter(([code]) => code !== ResultCode.noData))(
    'classifies resultCode %s the same for downloadBillFile',
    (resultCode, expected) => {
      expect(summary(classifyResult({ httpStatus: 200, resultCode, operation: 'downloadBillFile' }))).toBe(
        expected,
      );
    },
  );

  it('treats 0300012 on downloadBillFile as a range without data (issue 13, input 4)', () => {
    const c = classifyResult({ httpStatus: 200, resultCode: '0300012', operation: 'downloadBillFile' });
    expect(c).toMatchObject({ outcome: 'failure', type: 'CcfsNoData', category: 'no-data' });
  });

  it.each(['0300014', '0399999', '1', '-1', 'error', ''])(
    'classifies the undocumented code %j as a permanent CcfsBadRequest',
    (resultCode) => {
      expect(classifyResult({ httpStatus: 200, resultCode })).toMatchObject({
        outcome: 'failure',
        type: 'CcfsBadRequest',
        category: 'permanent',
      });
    },
  );

  it('classifies HTTP 200 without a resultCode as a CcfsProtocolError', () => {
    expect(classifyResult({ httpStatus: 200 })).toMatchObject({
      type: 'CcfsProtocolError',
      category: 'permanent',
    });
  });

  const statuses: Array<[number, CcfsErrorType]> = [
    [401, 'CcfsAuthRejected'],
    [403, 'CcfsIpLocked'],
    [429, 'CcfsFlowControl'],
    [408, 'CcfsUnavailable'],
    [500, 'CcfsUnavailable'],
    [502, 'CcfsUnavailable'],
    [503, 'CcfsUnavailable'],
    [504, 'CcfsUnavailable'],
    [599, 'CcfsUnavailable'],
    [400, 'CcfsBadRequest'],
    [404, 'CcfsBadRequest'],
    [405, 'CcfsBadRequest'],
    [301, 'CcfsProtocolError'],
    [204, 'CcfsProtocolError'],
  ];

  it.each(statuses)('classifies HTTP %i as %s whatever the body says', (httpStatus, type) => {
    for (const resultCode of [undefined, '0', '0300012', '0300011']) {
      const c = classifyResult({ httpStatus, resultCode });
      expect(c).toMatchObject({ outcome: 'failure', type, category: CCFS_ERROR_CATEGORY[type] });
    }
  });

  it('gives a meaning and a hint for every documented failure code', () => {
    for (const [code, info] of Object.entries(RESULT_CODES)) {
      expect(info.meaning.length, code).toBeGreaterThan(5);
      expect(info.hint.length, code).toBeGreaterThan(5);
    }
  });
});

describe('CcfsError', () => {
  it('derives the category from the type', () => {
    for (const type of Object.values(CcfsErrorType)) {
      const err = new CcfsError({ operation: 'queryBillData', type, message: 'x' });
      expect(err.category).toBe(CCFS_ERROR_CATEGORY[type]);
      expect(err.retryable).toBe(CCFS_ERROR_CATEGORY[type] === 'retryable');
    }
  });

  it('lists every non-retryable type for a retry policy', () => {
    expect([...NON_RETRYABLE_CCFS_ERROR_TYPES].sort()).toEqual(
      [
        'CcfsAuthRejected',
        'CcfsBadRequest',
        'CcfsFileNotFound',
        'CcfsIpLocked',
        'CcfsNoData',
        'CcfsProtocolError',
        'CcfsSpanRefused',
        'CcfsTlsError',
      ].sort(),
    );
  });

  it('writes an actionable message naming the operation, the code, its meaning and the description', () => {
    const c = classifyResult({ httpStatus: 200, resultCode: '0300004' });
    if (c.outcome !== 'failure') throw new Error('expected a failure');
    const err = errorFromClassification('queryBillData', c, {
      httpStatus: 200,
      resultCode: '0300004',
      resultDesc: 'beginTime is invalid',
    });
    expect(err.message).toMatch(
      /^queryBillData rejected by CC-FS: 0300004 a parameter has a wrong format \(beginTime is invalid\); /,
    );
    expect(err).toMatchObject({
      type: 'CcfsBadRequest',
      category: 'permanent',
      resultCode: '0300004',
      resultDesc: 'beginTime is invalid',
      httpStatus: 200,
    });
    expect(err.details).toEqual({
      operation: 'queryBillData',
      type: 'CcfsBadRequest',
      category: 'permanent',
      resultCode: '0300004',
      resultDesc: 'beginTime is invalid',
      httpStatus: 200,
    });
  });

  it('says a retryable failure will be retried', () => {
    const c = classifyResult({ httpStatus: 200, resultCode: '0300009' });
    if (c.outcome !== 'failure') throw new Error('expected a failure');
    const err = errorFromClassification('queryBillData', c, {
      resultCode: '0300009',
      resultDesc: 'flow control',
    });
    expect(err.message).toMatch(
      /^queryBillData failed at CC-FS: 0300009 query flow-control threshold reached \(flow control\); .*retry later/,
    );
  });
});

describe('classifyTransportError', () => {
  const target = 'https://10.0.0.1:28080';

  it.each([
    'ECONNREFUSED',
    'ECONNRESET',
    'ENOTFOUND',
    'ETIMEDOUT',
    'EPIPE',
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
  ])('classifies %s as a retryable CcfsUnavailable', (code) => {
    const err = classifyTransportError(Object.assign(new Error('boom'), { code }), 'queryBillData', target);
    expect(err).toMatchObject({ type: 'CcfsUnavailable', category: 'retryable', operation: 'queryBillData' });
    expect(err.message).toContain(code);
    expect(err.message).toContain(target);
  });

  it.each([
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'CERT_HAS_EXPIRED',
    'ERR_TLS_CERT_ALTNAME_INVALID',
  ])('classifies the certificate failure %s as a permanent CcfsTlsError', (code) => {
    const err = classifyTransportError(
      Object.assign(new Error('cert'), { code }),
      'downloadBillFile',
      target,
    );
    expect(err).toMatchObject({ type: 'CcfsTlsError', category: 'permanent' });
    expect(err.message).toMatch(/CA file/);
  });

  it('finds a certificate failure wrapped in a cause', () => {
    const inner = Object.assign(new Error('self-signed certificate'), {
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
    const outer = Object.assign(new Error('fetch failed', { cause: inner }), { code: 'UND_ERR_SOCKET' });
    expect(classifyTransportError(outer, 'queryBillData', target).type).toBe('CcfsTlsError');
  });
});
