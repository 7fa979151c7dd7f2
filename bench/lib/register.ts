// Registering many providers for a benchmark's setup: `PUT /v1/services/{service}/providers/{id}`
// over a few keep-alive connections at once (Node's fetch pools them), each answer checked.
// Setup only: the register benchmark measures this path itself, with its own reference.

export interface Registration { service: string, id: string, body: Record<string, unknown> }

/** A 503 (no leader right now: on a loaded machine a leader's pings can come late and the
 *  gateway fails over) is retried this many times, this far apart, as a client would. */
const RETRIES_503 = 40
const RETRY_MS = 250

/** PUTs one registration; throws with the gateway's answer unless it is 200 or 201. */
export async function putProvider (url: string, r: Registration): Promise<{ revision: number }> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${url}/v1/services/${r.service}/providers/${r.id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(r.body)
    })
    const text = await res.text()
    if (res.status === 503 && attempt <= RETRIES_503) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      continue
    }
    if (res.status !== 200 && res.status !== 201) throw new Error(`PUT ${r.service}/${r.id}: HTTP ${res.status} ${text.slice(0, 300)}`)
    return { revision: (JSON.parse(text) as { revision: number }).revision }
  }
}

/** PUTs them all, `concurrency` at a time; `progress` is called every 1,000. */
export async function putAll (url: string, all: readonly Registration[], concurrency: number, progress?: (done: number) => void): Promise<void> {
  let next = 0
  let done = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, all.length) }, async () => {
    while (next < all.length) {
      await putProvider(url, all[next++] as Registration)
      if (++done % 1000 === 0) progress?.(done)
    }
  }))
}
