import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_PATH } from '../worker/create-workers';

/**
 * Bundles the workflows the way the worker does, so a forbidden import (a Node built-in, an
 * activity module) fails the build rather than the worker at start. Production images ship the
 * result and the worker loads it instead of bundling at start.
 */
const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
mkdirSync(dirname(WORKFLOW_BUNDLE_PATH), { recursive: true });
writeFileSync(WORKFLOW_BUNDLE_PATH, code);
console.log(`workflow bundle: ${WORKFLOW_BUNDLE_PATH} (${(code.length / 1024 / 1024).toFixed(2)} MB)`);
