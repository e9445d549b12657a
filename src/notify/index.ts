/** Outgoing webhooks, gates and notifications: what the engine and the API use. */
export { type DeliveryResult, type DeliveryTarget, deliver, describeUrl, isRetryable } from './deliver.ts';
export {
  type Approval,
  checkGate,
  checkRollbackRequest,
  GATE_TYPES,
  type GateResult,
  GateStore,
  type GateType,
  gateKey,
} from './gates.ts';
export { buildPayload, type NotifyPayload, type PayloadType, type WebhookType } from './payload.ts';
export { type NotifyJob, planDeliveries } from './plan.ts';
export { NOTIFY_QUEUE, NotifyQueue, notifyOnEvents, notifyProcessor } from './queue.ts';
export { HEADERS, type SecretLookup, secretResolver, sign, verify } from './signing.ts';
export { severityOf, shouldNotify, slackMessage, summarize, validateSlackMessage } from './slack.ts';
