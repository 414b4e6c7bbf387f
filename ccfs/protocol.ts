import { z } from 'zod';

/** Wire formats of the CC-FS bill-export interfaces (docs/ccfs-protocol.md §3–§6). */

export const QUERY_BILL_DATA_PATH = '/CCFS/resource/ccfs/queryBillData';
export const DOWNLOAD_BILL_FILE_PATH = '/CCFS/resource/ccfs/downloadBillFile';
export const PROTOCOL_VERSION = '2.0';

export const ResultCode = {
  success: '0',
  parameterNull: '0300001',
  parameterEmpty: '0300002',
  parameterTooLong: '0300003',
  parameterFormat: '0300004',
  parameterTooShort: '0300005',
  wrongVersion: '0300006',
  bodyNull: '0300007',
  downloadFlowControl: '0300008',
  queryFlowControl: '0300009',
  fileNameDate: '0300010',
  fileNotFound: '0300011',
  noData: '0300012',
  beginAfterEnd: '0300013',
} as const;
export type ResultCode = (typeof ResultCode)[keyof typeof ResultCode];

export const DataType = z.enum(['call', 'record', 'call_record']);
export type DataType = z.infer<typeof DataType>;

/** `yyyy-MM-dd HH:mm:ss` wall time. Calendar validity is checked by domain/wall-time.ts. */
export const WallTimeString = z.string().regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/, 'expected yyyy-MM-dd HH:mm:ss');

const optionalField = (max: number) => z.string().min(1).max(max).optional();

/** The optional filters of queryBillData, with the documented lengths. */
export const QueryFilters = z.object({
  accountId: optionalField(20),
  agentId: optionalField(20),
  callId: optionalField(25),
  callerNo: optionalField(25),
  calleeNo: optionalField(25),
  calleeNo2: optionalField(25),
});
export type QueryFilters = z.infer<typeof QueryFilters>;
export const FILTER_KEYS = ['accountId', 'agentId', 'callId', 'callerNo', 'calleeNo', 'calleeNo2'] as const;

export const QueryBillDataBody = QueryFilters.extend({
  beginTime: WallTimeString,
  endTime: WallTimeString,
  dataType: DataType,
  callBackURL: z.string().min(1),
});
export type QueryBillDataBody = z.infer<typeof QueryBillDataBody>;

export const RequestEnvelope = z.object({ version: z.string() });

export function envelope<T>(msgBody: T): { request: { version: string }; msgBody: T } {
  return { request: { version: PROTOCOL_VERSION }, msgBody };
}

/** Every business answer: HTTP 200 with a resultCode. */
export const ResultEnvelope = z.object({
  resultCode: z.string(),
  resultDesc: z.string().optional().default(''),
  resultData: z.unknown().optional(),
});
export type ResultEnvelope = z.infer<typeof ResultEnvelope>;

export const QueryBillDataAnswer = ResultEnvelope.extend({
  resultData: z.object({ responseId: z.string().min(1).max(64) }).optional(),
});

export const DownloadBillFileBody = z.object({
  billFileName: z.string().min(1).max(49),
});

/** `yyyyMMdd_{responseId without hyphens}.zip` */
export const BILL_FILE_NAME = /^\d{8}_[0-9a-f]{32}\.zip$/;
export const BillFileName = z.string().regex(BILL_FILE_NAME, 'expected yyyyMMdd_<32 hex>.zip');

export const CallbackBody = z.object({
  request: z.object({ version: z.string().max(8) }).optional(),
  msgBody: z.object({
    responseId: z.string().min(1).max(64),
    billFileName: BillFileName,
    accountId: z.string().min(1).max(20).optional(),
  }),
});
export type CallbackBody = z.infer<typeof CallbackBody>;

/** Whether a bill file name was produced for a responseId (hyphens in the id are not significant). */
export function billFileMatchesResponse(billFileName: string, responseId: string): boolean {
  const id = responseId.replace(/-/g, '').toLowerCase();
  return BILL_FILE_NAME.test(billFileName) && billFileName.slice(9, 41) === id;
}

/** The answer a callback receiver gives so CC-FS stops retrying. */
export const CALLBACK_SUCCESS = { resultCode: '0', resultDesc: 'success' } as const;
