import type { IDestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule';
import type { IVirtualService } from '@kubernetes-models/istio/networking.istio.io/v1/VirtualService';

/**
 * Names for the parts of Istio's objects that vane reads and writes, derived from
 * @kubernetes-models/istio so they follow Istio's CRDs. The v1 shapes also describe v1beta1 and
 * v1alpha3 objects (same fields), so the objects keep whatever apiVersion they were read with.
 */
export type VirtualServiceSpec = NonNullable<IVirtualService['spec']>;
export type HttpRoute = NonNullable<VirtualServiceSpec['http']>[number];
export type HttpRouteDestination = NonNullable<HttpRoute['route']>[number];
export type Destination = HttpRouteDestination['destination'];
export type HttpMatchRequest = NonNullable<HttpRoute['match']>[number];

export type DestinationRuleSpec = NonNullable<IDestinationRule['spec']>;
export type Subset = NonNullable<DestinationRuleSpec['subsets']>[number];

/** A VirtualService as served at any of networking.istio.io/v1, v1beta1 or v1alpha3. */
export type VirtualServiceObject = Omit<IVirtualService, 'apiVersion'> & { apiVersion: string };
/** A DestinationRule as served at any of networking.istio.io/v1, v1beta1 or v1alpha3. */
export type DestinationRuleObject = Omit<IDestinationRule, 'apiVersion'> & { apiVersion: string };

export const ISTIO_GROUP = 'networking.istio.io';
