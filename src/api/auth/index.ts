export { type AuthenticateOptions, authenticate } from './authenticate.ts';
export { apiBinding, type Binding } from './binding.ts';
export {
  assertNamespace,
  assertScope,
  type NamespaceOf,
  principalOf,
  requireScope,
} from './require-scope.ts';
export { scoped } from './scoped.ts';
export { LOCAL_PRINCIPAL, type Principal, SCOPES, type Scope, TokenTable } from './tokens.ts';
