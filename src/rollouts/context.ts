import type { MeshTarget, TrafficRouter } from '../mesh/types.ts';
import type { AnalysisReport } from '../metrics/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { Recorder } from '../observability/recorder.ts';
import type { BacktestRunner } from './backtest.ts';
import type { Rollout, RolloutEvent } from './model.ts';
import type { RolloutSpec } from './spec.ts';
import type { RolloutStore } from './store.ts';
import type { TemplateStore } from './templates.ts';

/** Readiness of the canary workload as the cluster reports it. */
export interface WorkloadStatus {
  ready: boolean;
  desired: number;
  readyReplicas: number;
  message?: string;
}

export interface WorkloadReader {
  readWorkload(namespace: string, kind: string, name: string, cluster?: string): Promise<WorkloadStatus>;
}

/** Runs a rollout's metric checks: the critical ones (guard) or all of them (full). */
export interface RolloutAnalyzer {
  analyze(
    rollout: Rollout,
    scope: 'critical' | 'full',
    now: number,
    signal?: AbortSignal,
  ): Promise<AnalysisReport>;
}

/** Wakes a rollout's tick at once (after a command) or starts its ticking (after creation). */
export interface TickScheduler {
  wake(rolloutId: string): Promise<void>;
}

/** Preflight findings that stop a rollout (errors only). */
export interface Preflight {
  check(target: MeshTarget, rolloutId: string): Promise<{ code: string; message: string }[]>;
}

/** After the verdict (AfterVerdictService in src/rollouts/after-verdict.ts): what the engine, the API and the worker call. */
export interface AfterVerdictHooks {
  /** Before a promotion is written: keeps what undo needs (a relabelled subset's old labels). */
  beforePromote(ctx: DomainContext, r: Rollout): Promise<void>;
  /** Once a terminal phase is saved: schedules the scale-down that follows; never throws. */
  ended(ctx: DomainContext, id: string): Promise<void>;
  requestUndo(ctx: DomainContext, cmd: { id: string; by?: string; reason?: string }): Promise<Rollout>;
  runScaleDown(ctx: DomainContext, id: string): Promise<void>;
  runUndo(ctx: DomainContext, id: string): Promise<void>;
  gaveUp(ctx: DomainContext, kind: 'scale-down' | 'undo', id: string, message: string): Promise<void>;
}

/** Gates that hold a rollout before a weight change or before promotion. */
export type GateName = 'pre-rollout' | 'confirm-rollout' | 'confirm-traffic-increase' | 'confirm-promotion';

export interface GateKeeper {
  /** The key an approval of this gate is stored under (confirm-traffic-increase per step). */
  keyOf(name: GateName, stageIndex: number): string;
  /** Whether the rollout has webhooks of this gate type. */
  applies(r: Rollout, name: GateName): boolean;
  /**
   * Opens on a waiting approval or on the stored answer of the gate's webhooks (every one 2xx).
   * Never waits for a webhook: without a stored answer it starts one bounded call in the background
   * and says `pending`. `consume`: Redis keys the engine deletes in the same step that saves the
   * result (an approval or an answer is used once, and not lost when that save loses a conflict).
   */
  check(
    r: Rollout,
    name: GateName,
    stageIndex: number,
  ): Promise<{ open: boolean; message: string; by?: string; pending?: boolean; consume?: string[] }>;
  /** The stored answer of a `rollback` webhook that asked for a rollback; undefined otherwise (a call may start in the background). */
  rollbackRequested(r: Rollout): Promise<string | undefined>;
}

/** Whoever wants to hear about a rollout's events (notifications, webhooks of type event). */
export type EventListener = (rollout: Rollout, events: RolloutEvent[]) => void;

/** Everything the domain verbs and the engine need; built once per process. */
export interface DomainContext {
  store: RolloutStore;
  templates: TemplateStore;
  /** The traffic router of a cluster (by kubeconfig context; undefined = the default one). */
  router(cluster?: string): TrafficRouter;
  workloads?: WorkloadReader;
  analyzer: RolloutAnalyzer;
  scheduler: TickScheduler;
  preflight?: Preflight;
  gates?: GateKeeper;
  /** What follows a verdict: scale-downs and undo (src/rollouts/after-verdict.ts); none without a cluster. */
  after?: AfterVerdictHooks;
  /** The preflight analyzer on live objects (findings with codes and fixes). */
  analyzeTarget?: (target: MeshTarget) => Promise<{
    errors: number;
    warnings: number;
    findings: { code: string; severity: string; message: string; fix: string }[];
  }>;
  /** Approvals stored for a gate of a rollout, each used once by the engine. */
  approvals?: {
    approve(
      rolloutId: string,
      gate: string,
      by: string,
      opts?: { reason?: string; now?: number },
    ): Promise<unknown>;
  };
  recorder: Recorder;
  logger: Logger;
  now(): number;
  onEvents?: EventListener;
  /** Replays a spec's analysis over a past window (POST /api/v1/analyze/backtest); absent without a Prometheus. */
  backtest?: BacktestRunner;
  /** Checks of a new spec against what this process has (a cluster, a Prometheus); each issue names its field. */
  validateSpec?: (spec: RolloutSpec) => { path: string; message: string }[];
}
