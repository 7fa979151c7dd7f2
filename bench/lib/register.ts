// Registering many providers for a benchmark's setup: `PUT /v1/services/{service}/providers/{id}`
// over a few keep-alive connections at once (Node's fetch pools them), each answer checked.
// Setup only: the register benchmark measures this path itself, with its own reference.

export interface Registration { service: string, id: string, body: Record<string, unknown> }

/** PUTs one registration; throws with the gateway's answer unless it is 200 or 201. */
export async function putProvider (url: string, r: Registration): Promise<{ revision: number }> {
  const res = await fetch(`${url}/v1/services/${r.service}/providers/${r.id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(r.body)
  })
  const text = await res.text()
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT ${r.service}/${r.id}: HTTP ${res.status} ${text.slice(0, 300)}`)
  return { revision: (JSON.parse(text) as { revision: number }).revision }
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
