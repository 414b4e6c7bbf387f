export { exportWorkflow } from './export-workflow';
export { chunkWorkflow } from './chunk-workflow';
export { dailyExportWorkflow, dayExportWorkflow } from './daily-export-workflow';
export { loadExportWorkflow } from './load-export-workflow';
