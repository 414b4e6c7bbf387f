/** Public surface of the CC-FS simulator. */
export {
  type RowKeys,
  type RowsQuery,
  type RunningSimulator,
  type RuntimeOptions,
  type Simulator,
  createSimulator,
  startSimulator,
} from './app';
export { CDR_COLUMNS, EXTRA_CDR_COLUMNS, RECORD_COLUMNS, type CdrRow, type RecordRow } from './data';
export { DEFAULTS, Faults, NO_FAULTS, type SimulatorAccount, type SimulatorOptions } from './options';
export type {
  CallbackRecord,
  DownloadRecord,
  FaultRecord,
  FileRecord,
  QueryRecord,
  SimulatorState,
} from './state';
