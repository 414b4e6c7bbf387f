import { defineSearchAttributeKey } from '@temporalio/common';

/**
 * Custom search attributes, so an operator can filter in the Temporal UI (e.g. every failed export
 * of one tenant in March). `SEARCH_ATTRIBUTES` is what the dev launcher, the tests and the
 * documented cluster command register.
 */
export const ExportIdKey = defineSearchAttributeKey('CcfsExportId', 'KEYWORD');
export const TenantKey = defineSearchAttributeKey('CcfsTenant', 'KEYWORD');
export const DataTypeKey = defineSearchAttributeKey('CcfsDataType', 'KEYWORD');
export const RangeBeginKey = defineSearchAttributeKey('CcfsRangeBegin', 'DATETIME');
export const RangeEndKey = defineSearchAttributeKey('CcfsRangeEnd', 'DATETIME');
export const ExportStateKey = defineSearchAttributeKey('CcfsExportState', 'KEYWORD');
export const KindKey = defineSearchAttributeKey('CcfsKind', 'KEYWORD');
/** The local day (`yyyy-MM-dd`, tenant zone) a daily export covers; set on its day and export workflows. */
export const DayKey = defineSearchAttributeKey('CcfsDay', 'KEYWORD');
/**
 * Every responseId a chunk got from queryBillData, without hyphens and in lower case: with
 * `CALLBACK_ROUTING=response-id` the callback endpoint finds the chunk to signal by this key.
 */
export const ResponseIdsKey = defineSearchAttributeKey('CcfsResponseIds', 'KEYWORD_LIST');

export const SEARCH_ATTRIBUTES: Readonly<Record<string, 'Keyword' | 'Datetime' | 'KeywordList'>> = {
  CcfsExportId: 'Keyword',
  CcfsTenant: 'Keyword',
  CcfsDataType: 'Keyword',
  CcfsRangeBegin: 'Datetime',
  CcfsRangeEnd: 'Datetime',
  CcfsExportState: 'Keyword',
  CcfsKind: 'Keyword',
  CcfsDay: 'Keyword',
  CcfsResponseIds: 'KeywordList',
};
