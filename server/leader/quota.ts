// Provider quotas: how many providers one service, and the whole registry, may hold. The leader
// is the only writer, so it alone knows the exact counts, including the registrations earlier in
// the batch it is deciding; this module keeps those counts and says whether one more provider
// fits. Pure: registry.ts asks it when deciding a new registration; an update of an existing
// provider never adds one, so a quota never refuses it.
import { Errors } from '../protocol/error-codes.js'
import type { Change } from '../protocol/model.js'

/** 100,000 providers in one service is ten times the largest fleet measured (10,000 heartbeating
 *  providers, the README's footprint row); 500,000 in total bounds what every gateway and the
 *  leader hold in memory and what each snapshot carries. A registry past either is more likely
 *  being flooded (20,000 registrations from one client took 11.5 s) than used. */
export const DEFAULT_QUOTAS: QuotaLimits = { maxProvidersPerService: 100_000, maxProviders: 500_000 }

export interface QuotaLimits {
  /** `--max-providers-per-service` */
  maxProvidersPerService: number
  /** `--max-providers` */
  maxProviders: number
}

export const QuotaCodes = {
  service: Errors.quotaService.code,
  total: Errors.quotaTotal.code
} as const

export interface ProviderCounts {
  readonly total: number
  of: (service: string) => number
}

/** Counts that follow committed changes: +1 for `registered`, −1 for `deregistered` (no other
 *  event adds or removes a provider, nor moves one to another service). */
export interface MutableCounts extends ProviderCounts {
  note: (change: Pick<Change, 'event' | 'provider'>) => void
  /** A view that starts from these counts and takes a batch's own changes, without touching
   *  them: the batch may yet fail to commit. */
  overlay: () => MutableCounts
}

export function createProviderCounts (services: Iterable<string> = [], base?: ProviderCounts): MutableCounts {
  const delta = new Map<string, number>()
  let totalDelta = 0
  const bump = (service: string, by: number): void => {
    const n = (delta.get(service) ?? 0) + by
    if (n === 0 && base === undefined) delta.delete(service)
    else delta.set(service, n)
    totalDelta += by
  }
  for (const s of services) bump(s, 1)
  const counts: MutableCounts = {
    get total () { return (base?.total ?? 0) + totalDelta },
    of: (service) => (base?.of(service) ?? 0) + (delta.get(service) ?? 0),
    note (change) {
      if (change.event === 'registered') bump(change.provider.service, 1)
      else if (change.event === 'deregistered') bump(change.provider.service, -1)
    },
    overlay: () => createProviderCounts([], counts)
  }
  return counts
}

/** Why one more provider under `service` does not fit, or null when it does. */
export function quotaRefusal (counts: ProviderCounts, service: string, limits: QuotaLimits): { statusCode: number, code: string, message: string } | null {
  if (counts.of(service) >= limits.maxProvidersPerService) {
    return {
      statusCode: Errors.quotaService.status,
      code: QuotaCodes.service,
      message: `service '${service}' already has ${limits.maxProvidersPerService} providers, its quota (--max-providers-per-service ${limits.maxProvidersPerService}); deregister one first`
    }
  }
  if (counts.total >= limits.maxProviders) {
    return {
      statusCode: Errors.quotaTotal.status,
      code: QuotaCodes.total,
      message: `the registry already holds ${limits.maxProviders} providers, its quota (--max-providers ${limits.maxProviders}); deregister one first`
    }
  }
  return null
}
