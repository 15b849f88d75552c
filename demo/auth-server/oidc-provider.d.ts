/**
 * The slice of oidc-provider 9 that demo/auth-server/ uses. The package ships no
 * types and no @types package is installed; declaring only what we call keeps the server
 * type-checked without pretending to describe the whole library. Configuration stays a
 * loose record: oidc-provider validates it at construction and throws on unknown shapes.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  /** The `ctx.oidc` fields the server reads. */
  export interface OIDCContext {
    readonly route?: string
    readonly params?: Record<string, unknown>
    readonly client?: { readonly clientId: string; readonly redirectUris: readonly string[] }
    readonly account?: { readonly accountId: string }
    readonly session?: {
      readonly accountId?: string
      grantIdFor(clientId: string): string | undefined
    }
    readonly result?: { readonly consent?: { readonly grantId?: string } }
    readonly requestParamOIDCScopes: Set<string>
    readonly requestParamScopes: Set<string>
    readonly requestParamClaims: Set<string>
    readonly resourceServers: Record<string, { readonly scopes: Set<string> }>
    readonly provider: Provider
    /** The models loaded for this request; `RefreshToken` during a refresh_token grant. */
    readonly entities: { readonly RefreshToken?: { ttlPercentagePassed(): number } }
  }

  /** The Koa context with `oidc` (Koa's own types are not installed either). */
  export interface KoaContextWithOIDC {
    readonly oidc: OIDCContext
    readonly method: string
    readonly path: string
    status: number
    body: unknown
    /** `false`: Koa writes nothing (the middleware took the socket). */
    respond: boolean
    readonly req: IncomingMessage
    get(header: string): string
    set(header: string, value: string): void
  }

  /** A Grant (the consent record) as the grant API exposes it. */
  export interface Grant {
    readonly jti?: string
    readonly accountId?: string
    readonly clientId?: string
    addOIDCScope(scope: string): void
    addOIDCClaims(claims: readonly string[]): void
    addResourceScope(resource: string, scope: string): void
    getOIDCScopeEncountered(): string
    getResourceScopeEncountered(resource: string): string
    save(ttl?: number): Promise<string>
  }

  export interface GrantConstructor {
    new (properties: { accountId: string; clientId: string }): Grant
    find(id: string): Promise<Grant | undefined>
  }

  /** A token model instance as emitted with `*.saved`, `*.issued`, `*.consumed`. */
  export interface TokenModel {
    readonly kind: string
    readonly jti?: string
    readonly jkt?: string
    readonly grantId?: string
    readonly gty?: string
    readonly clientId?: string
  }

  export type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>)
    readonly issuer: string
    proxy: boolean
    readonly Grant: GrantConstructor
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    use(middleware: Middleware): void
    on(event: string, listener: (...args: never[]) => void): this
  }

  /** OAuth error classes; the error handler turns them into `400 { error, error_description }`. */
  export const errors: {
    readonly InvalidTarget: new (description?: string) => Error
    readonly InvalidDpopProof: new (description?: string) => Error
    readonly UseDpopNonce: new (description?: string) => Error
  }

  export default Provider
}

/** oidc-provider's stateless nonces (HMAC of the time step): the same secret gives the same nonces. */
declare module 'oidc-provider/lib/helpers/challenge.js' {
  export default class ServerChallenge {
    constructor(secret: Buffer, info: string)
    /** The nonce to hand out now. */
    nextChallenge(): string
    /** Whether `challenge` is one of the nonces accepted now. */
    checkChallenge(challenge: string): boolean
  }
}
