// What the rest of the sandbox (gateway, orchestration) uses of the pod runtime. The runtime itself
// is started by startKubeSimulator({ pods: true | { maxPods } }).
export { type Endpoint, endpointsOf, type ObjectLister, selectEndpoints } from './endpoints.ts';
export {
  type DemoConfig,
  demoConfigOf,
  ERROR_RATE_ANNOTATION,
  LATENCY_ANNOTATION,
  POD_IP,
  PORT_ANNOTATION,
  type RunningPod,
} from './kubelet.ts';
export type { PodRuntime, PodRuntimeOptions } from './runtime.ts';
