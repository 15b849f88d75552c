/**
 * Minimal in-memory implementations of the store interfaces `@atproto/oauth-provider` needs
 * (it ships none): accounts (one test user), devices, lexicons, authorization requests and
 * tokens. Written from the interfaces' type definitions and their doc comments; the parts a
 * browser sign-in never reaches (sign-up, e-mail and password flows, account deletion) refuse
 * with the provider's own error type. Replay protection uses the provider's memory default.
 */
import type {
  Account,
  AccountStore,
  AuthenticateAccountData,
  AuthorizedClientData,
  AuthorizedClients,
  ClientId,
  DeviceAccount,
  DeviceId,
  Did,
} from '@atproto/oauth-provider/store'
import type { DeviceData, DeviceStore } from '@atproto/oauth-provider/store'
import type { LexiconData, LexiconStore } from '@atproto/oauth-provider/store'
import type {
  FoundRequestResult,
  RequestData,
  RequestId,
  RequestStore,
  UpdateRequestData,
} from '@atproto/oauth-provider/store'
import type {
  CreateTokenData,
  NewTokenData,
  RefreshToken,
  TokenData,
  TokenId,
  TokenInfo,
  TokenStore,
} from '@atproto/oauth-provider/store'
import { randomBytes } from 'node:crypto'
import {
  InvalidCredentialsError,
  InvalidGrantError,
  InvalidRequestError,
} from '@atproto/oauth-provider/errors'

/** The test account and its password (the sign-in form takes the handle or the e-mail). */
export interface TestUser {
  account: Account
  password: string
}

/** What the token store holds for one grant, for the test to read (never token values). */
export interface GrantRecord {
  tokenId: string
  did: string
  clientId: string
  jkt: string | undefined
  /** Refresh tokens this grant has had, oldest first (the current one last); their count, for the control endpoint. */
  refreshTokens: number
}

// The provider's branded code type (`cod-…`), as its stores receive it.
type Code = NonNullable<RequestData['code']>

/** One object implementing every store the provider requires, over plain Maps. */
export function createMemoryStore(user: TestUser): AccountStore &
  DeviceStore &
  LexiconStore &
  RequestStore &
  TokenStore & {
    /** The grants the token store holds now. */
    grants(): GrantRecord[]
    /**
     * Gives every grant a new token id, so the access tokens issued so far (whose `jti` is the
     * old id) are no longer found while the refresh tokens stay valid: the server ending access
     * tokens early. (Moving `expiresAt` into the past would not do: the provider deletes the
     * whole grant when a resource presents an expired access token.)
     */
    forgetAccessTokens(): number
    /** Forgets everything but the account. */
    reset(): void
  } {
  const devices = new Map<DeviceId, DeviceData>()
  // deviceId + did -> when the device account was created/updated
  const deviceAccounts = new Map<
    string,
    { deviceId: DeviceId; did: Did; createdAt: Date; updatedAt: Date }
  >()
  const authorizedClients = new Map<Did, AuthorizedClients>()
  const lexicons = new Map<string, LexiconData>()
  const requests = new Map<RequestId, RequestData>()
  const tokens = new Map<
    TokenId,
    { data: TokenData; current: RefreshToken | null; previous: RefreshToken[] }
  >()

  const accountOf = (did: Did): Account => {
    if (did !== user.account.did) throw new InvalidRequestError(`Unknown account ${did}`)
    return user.account
  }
  const clientsOf = (did: Did): AuthorizedClients => {
    let clients = authorizedClients.get(did)
    if (!clients) authorizedClients.set(did, (clients = new Map()))
    return clients
  }
  const deviceAccount = (entry: {
    deviceId: DeviceId
    did: Did
    createdAt: Date
    updatedAt: Date
  }): DeviceAccount | null => {
    const deviceData = devices.get(entry.deviceId)
    if (!deviceData) return null
    return {
      deviceId: entry.deviceId,
      deviceData,
      account: accountOf(entry.did),
      authorizedClients: clientsOf(entry.did),
      createdAt: entry.createdAt,
      updatedAt: entry.updatedAt,
    }
  }
  const tokenInfo = (id: TokenId): TokenInfo | null => {
    const t = tokens.get(id)
    return t
      ? { id, data: t.data, account: accountOf(t.data.did), currentRefreshToken: t.current }
      : null
  }
  const unsupported = (what: string) => (): never => {
    throw new InvalidRequestError(`${what} is not supported by this test server`)
  }

  return {
    // ------------------------------------------------------------ AccountStore
    createAccount: unsupported('Sign-up'),
    authenticateAccount(data: AuthenticateAccountData): Account {
      const { account } = user
      const known =
        data.username === account.handle ||
        data.username === account.email ||
        data.username === account.did
      if (!known) throw new InvalidCredentialsError('Invalid identifier or password')
      if (data.password !== user.password)
        throw new InvalidCredentialsError('Invalid identifier or password', account.did)
      return account
    },
    setAuthorizedClient(did: Did, clientId: ClientId, data: AuthorizedClientData): void {
      clientsOf(did).set(clientId, data)
    },
    getAccount(did: Did) {
      return { account: accountOf(did), authorizedClients: clientsOf(did) }
    },
    upsertDeviceAccount(deviceId: DeviceId, did: Did): void {
      const key = `${deviceId} ${did}`
      const now = new Date()
      const existing = deviceAccounts.get(key)
      deviceAccounts.set(key, {
        deviceId,
        did,
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      })
    },
    getDeviceAccount(deviceId: DeviceId, did: Did): DeviceAccount | null {
      const entry = deviceAccounts.get(`${deviceId} ${did}`)
      return entry ? deviceAccount(entry) : null
    },
    removeDeviceAccount(deviceId: DeviceId, did: Did): void {
      deviceAccounts.delete(`${deviceId} ${did}`)
    },
    listDeviceAccounts(filter: { did: Did } | { deviceId: DeviceId }): DeviceAccount[] {
      return [...deviceAccounts.values()]
        .filter((e) => ('did' in filter ? e.did === filter.did : e.deviceId === filter.deviceId))
        .map(deviceAccount)
        .filter((a): a is DeviceAccount => a !== null)
    },
    resetPasswordRequest: unsupported('Password reset'),
    resetPasswordConfirm: unsupported('Password reset'),
    updateEmailRequest: unsupported('E-mail update'),
    updateEmailConfirm: unsupported('E-mail update'),
    verifyEmailRequest: unsupported('E-mail verification'),
    verifyEmailConfirm: unsupported('E-mail verification'),
    verifyHandleAvailability: unsupported('Handle change'),
    updateHandle: unsupported('Handle change'),
    deactivateAccount: unsupported('Account deactivation'),
    reactivateAccount: unsupported('Account reactivation'),
    deleteAccountRequest: unsupported('Account deletion'),
    deleteAccountConfirm: unsupported('Account deletion'),

    // ------------------------------------------------------------ DeviceStore
    createDevice(deviceId: DeviceId, data: DeviceData): void {
      devices.set(deviceId, data)
    },
    readDevice(deviceId: DeviceId): DeviceData | null {
      return devices.get(deviceId) ?? null
    },
    updateDevice(deviceId: DeviceId, data: Partial<DeviceData>): void {
      const existing = devices.get(deviceId)
      if (existing) devices.set(deviceId, { ...existing, ...data })
    },
    deleteDevice(deviceId: DeviceId): void {
      devices.delete(deviceId)
      for (const [key, e] of deviceAccounts) if (e.deviceId === deviceId) deviceAccounts.delete(key)
    },

    // ------------------------------------------------------------ LexiconStore
    findLexicon: (nsid: string) => lexicons.get(nsid) ?? null,
    storeLexicon(nsid: string, data: LexiconData): void {
      lexicons.set(nsid, data)
    },
    deleteLexicon(nsid: string): void {
      lexicons.delete(nsid)
    },

    // ------------------------------------------------------------ RequestStore
    createRequest(requestId: RequestId, data: RequestData): void {
      requests.set(requestId, data)
    },
    readRequest: (requestId: RequestId) => requests.get(requestId) ?? null,
    updateRequest(requestId: RequestId, data: UpdateRequestData): void {
      const existing = requests.get(requestId)
      if (!existing) throw new InvalidRequestError('Unknown authorization request')
      requests.set(requestId, { ...existing, ...data })
    },
    deleteRequest(requestId: RequestId): void {
      requests.delete(requestId)
    },
    consumeRequestCode(code: Code): FoundRequestResult | null {
      // Single-threaded: finding and deleting in one synchronous step is the "only one
      // of two concurrent exchanges succeeds" the interface asks for.
      for (const [requestId, data] of requests) {
        if (data.code !== code) continue
        requests.delete(requestId)
        if (data.expiresAt.getTime() < Date.now())
          throw new InvalidGrantError('This code has expired')
        return { requestId, data }
      }
      return null
    },

    // ------------------------------------------------------------ TokenStore
    createToken(tokenId: TokenId, data: CreateTokenData, refreshToken?: RefreshToken): void {
      tokens.set(tokenId, { data, current: refreshToken ?? null, previous: [] })
    },
    readToken: (tokenId: TokenId) => tokenInfo(tokenId),
    deleteToken(tokenId: TokenId): void {
      tokens.delete(tokenId)
    },
    rotateToken(
      tokenId: TokenId,
      newTokenId: TokenId,
      newRefreshToken: RefreshToken,
      newData: NewTokenData,
    ): void {
      const t = tokens.get(tokenId)
      if (!t) throw new InvalidGrantError('Unknown token')
      tokens.delete(tokenId)
      // Old refresh tokens keep pointing at the grant, so the provider can see a replay.
      tokens.set(newTokenId, {
        data: { ...t.data, ...newData },
        current: newRefreshToken,
        previous: t.current ? [...t.previous, t.current] : t.previous,
      })
    },
    findTokenByRefreshToken(refreshToken: RefreshToken): TokenInfo | null {
      for (const [id, t] of tokens)
        if (t.current === refreshToken || t.previous.includes(refreshToken)) return tokenInfo(id)
      return null
    },
    findTokenByCode(code: Code): TokenInfo | null {
      for (const [id, t] of tokens) if (t.data.code === code) return tokenInfo(id)
      return null
    },
    listAccountTokens: (did: Did) =>
      [...tokens.keys()]
        .map(tokenInfo)
        .filter((t): t is TokenInfo => t !== null && t.data.did === did),

    // ------------------------------------------------------------ for the tests
    grants: () =>
      [...tokens].map(([tokenId, t]) => ({
        tokenId,
        did: t.data.did,
        clientId: t.data.clientId,
        jkt: t.data.parameters.dpop_jkt,
        refreshTokens: t.previous.length + (t.current ? 1 : 0),
      })),
    forgetAccessTokens(): number {
      const entries = [...tokens]
      tokens.clear()
      for (const [, t] of entries) tokens.set(`tok-${randomBytes(16).toString('hex')}`, t)
      return entries.length
    },
    reset(): void {
      for (const m of [devices, deviceAccounts, authorizedClients, lexicons, requests, tokens])
        m.clear()
    },
  }
}
