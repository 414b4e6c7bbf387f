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
export const WallTimeString = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/, 'expected yyyy-MM-dd HH:mm:ss');

const optionalField = (max: number) => z.string().min(1).max(max).optional();
/**
 * An optional field on the wire. The seed's own request example sends `"accountId": ""` for a filter it
 * does not use, so there an empty string means "absent" (parsed to undefined, hence never sent on).
 */
const wireOptionalField = (max: number) =>
  z.union([z.literal('').transform(() => undefined), z.string().min(1).max(max)]).optional();

/** The optional filters of queryBillData, with the documented lengths (what users may give). */
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

/** The queryBillData msgBody as the seed shows it: empty filters (`""`) are accepted and dropped. */
export const QueryBillDataBody = z.object({
  accountId: wireOptionalField(20),
  agentId: wireOptionalField(20),
  callId: wireOptionalField(25),
  callerNo: wireOptionalField(25),
  calleeNo: wireOptionalField(25),
  calleeNo2: wireOptionalField(25),
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

/**
 * `yyyyMMdd_{responseId without hyphens}.zip`. The hex is matched in either case (the doc's examples are
 * lower case; nothing says an implementation may not upper-case it); the file is downloaded under the
 * name exactly as received, and compared with responseIds after normalising both.
 */
export const BILL_FILE_NAME = /^\d{8}_[0-9a-fA-F]{32}\.zip$/;
export const BillFileName = z.string().regex(BILL_FILE_NAME, 'expected yyyyMMdd_<32 hex>.zip');

/** A responseId without hyphens and in lower case: the form compared, searched and stored in `CcfsResponseIds`. */
export function normalizeResponseId(responseId: string): string {
  return responseId.replace(/-/g, '').toLowerCase();
}

/**
 * The callback body (protocol §3, seed "Example of the message returned by the call center"). Tolerant
 * where the seed is: `accountId: ""` means absent (the seed's example sends it although its table says
 * the field is then not returned), the seed's prose calls the file field `billName` (accepted as an
 * alias), `request` may be missing. Strict where security depends on it: billFileName's shape (no path
 * characters, ≤ 49 characters) and, through {@link billFileMatchesResponse}, its link to the responseId.
 * Output: `{ request?, msgBody: { responseId, billFileName, accountId? } }`; throws a ZodError otherwise.
 */
export const CallbackBody = z.object({
  request: z.object({ version: z.string().max(32) }).optional(),
  msgBody: z
    .object({
      responseId: z.string().min(1).max(64),
      billFileName: BillFileName.optional(),
      billName: BillFileName.optional(),
      accountId: z.union([z.literal('').transform(() => undefined), z.string().min(1).max(20)]).optional(),
    })
    .refine((m) => m.billFileName !== undefined || m.billName !== undefined, {
      message: 'billFileName is required',
      path: ['billFileName'],
    })
    .refine(
      (m) => m.billFileName === undefined || m.billName === undefined || m.billFileName === m.billName,
      {
        message: 'billFileName and billName differ',
        path: ['billName'],
      },
    )
    .transform(({ responseId, billFileName, billName, accountId }) => ({
      responseId,
      billFileName: (billFileName ?? billName) as string,
      ...(accountId !== undefined && { accountId }),
    })),
});
export type CallbackBody = z.infer<typeof CallbackBody>;

/**
 * Whether a bill file name was produced for a responseId: the 32 hex of the name equal the responseId
 * without hyphens, both compared in lower case (protocol §3: hyphens and case are not significant).
 */
export function billFileMatchesResponse(billFileName: string, responseId: string): boolean {
  return (
    BILL_FILE_NAME.test(billFileName) &&
    billFileName.slice(9, 41).toLowerCase() === normalizeResponseId(responseId)
  );
}

/** The answer a callback receiver gives so CC-FS stops retrying. */
export const CALLBACK_SUCCESS = { resultCode: '0', resultDesc: 'success' } as const;

/** Recording index columns in the documented order (docs/ccfs-protocol.md §5, 18 columns). */
export const RECORD_COLUMNS = [
  'developer',
  'account_id',
  'cc_id',
  'agent_id',
  'call_id',
  'caller_no',
  'callee_no',
  'call_begin',
  'call_end',
  'file_name',
  'task_status',
  'task_result',
  'original_file_name',
  'vdn_id',
  'call_type',
  'media_type',
  'user_wanted_skill_id',
  'current_skill_id',
] as const;

/** CDR columns in the documented order (§5: the first 21; later ones are kept in `extra`). */
export const CDR_COLUMNS = [
  'developer',
  'account_id',
  'cc_id',
  'agent_id',
  'call_id',
  'caller_no',
  'callee_no',
  'wait_begin',
  'wait_end',
  'ack_begin',
  'ack_end',
  'call_begin',
  'call_end',
  'device_type',
  'device_no',
  'call_type',
  'release_cause',
  'call_id_num',
  'vdn_id',
  'pre_device_type',
  'pre_device_no',
] as const;
