export { exportWorkflow } from './export-workflow';
export { chunkWorkflow } from './chunk-workflow';
