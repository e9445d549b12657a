/** The analyzer's findings: stable codes, each with its name and severity. Codes are never reused. */
export const FINDINGS = {
  VANE0101: { name: 'VirtualServiceNotFound', severity: 'error' },
  VANE0102: { name: 'RouteNotFound', severity: 'error' },
  VANE0103: { name: 'SubsetNotFound', severity: 'error' },
  /** A warning (older Istio releases refused it); a total of 0 is an error. */
  VANE0104: { name: 'WeightsDoNotSumTo100', severity: 'warning' },
  /** An error when both claim the host for the mesh (sidecars); a warning for a shared gateway. */
  VANE0105: { name: 'HostClaimedByAnotherVirtualService', severity: 'error' },
  VANE0106: { name: 'CanaryLabelsSelectNoPods', severity: 'error' },
  VANE0107: { name: 'TargetBusy', severity: 'error' },
  VANE0108: { name: 'DestinationRuleNotFound', severity: 'error' },
  VANE0109: { name: 'HostMismatch', severity: 'error' },
  VANE0110: { name: 'NoManagedRoutes', severity: 'error' },
  VANE0111: { name: 'CanarySubsetLabelsDiffer', severity: 'warning' },
  VANE0112: { name: 'StableDestinationMissing', severity: 'error' },
  VANE0113: { name: 'DuplicateDestination', severity: 'error' },
  VANE0114: { name: 'CanaryLabelsSelectStable', severity: 'error' },
  VANE0115: { name: 'SameStableAndCanarySubset', severity: 'error' },
  VANE0116: { name: 'MirrorAlreadySet', severity: 'info' },
} as const satisfies Record<string, { name: string; severity: Severity }>;

export type Severity = 'error' | 'warning' | 'info';
export type FindingCode = keyof typeof FINDINGS;

export interface ObjectId {
  kind: 'VirtualService' | 'DestinationRule' | 'Pod' | 'Rollout';
  namespace: string;
  name: string;
}

export interface Finding {
  code: FindingCode;
  /** The code's name, e.g. SubsetNotFound. */
  name: string;
  severity: Severity;
  object: ObjectId;
  /** Path of the field in the object, e.g. spec.http[1].route[0].destination.subset. */
  field?: string;
  message: string;
  /** What to change so the finding goes away. */
  fix: string;
}

export function finding(
  code: FindingCode,
  object: ObjectId,
  field: string | undefined,
  message: string,
  fix: string,
  severity: Severity = FINDINGS[code].severity,
): Finding {
  return { code, name: FINDINGS[code].name, severity, object, ...(field ? { field } : {}), message, fix };
}

export function objectName(o: ObjectId): string {
  return `${o.kind} ${o.namespace}/${o.name}`;
}
