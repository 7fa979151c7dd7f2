// Scrapes a /metrics endpoint and parses the text with the Prometheus project's reference parser
// (prometheus_client, run by prom-parse.py), so that tests assert on what a Prometheus server
// would store, and fail on text it would refuse. Needs `apt-get install python3-prometheus-client`
// (`.ci/run` installs it); the tests that scrape are skipped where it is missing, as the pyzmq
// ones are.
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const PARSER = fileURLToPath(new URL('./prom-parse.py', import.meta.url))
const PYTHON = '/usr/bin/python3'

export const hasPrometheusParser = spawnSync(PYTHON, ['-c', 'import prometheus_client']).status === 0

export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Family { name: string, type: string, samples: Sample[] }

export class Scrape {
  readonly text: string
  readonly families: Family[]
  constructor (text: string, families: Family[]) {
    this.text = text
    this.families = families
  }

  family (name: string): Family | undefined {
    return this.families.find((f) => f.name === name)
  }

  /** Samples named `name` (a histogram's `…_count`, a counter's `…_total`) whose labels include `labels`. */
  samples (name: string, labels: Record<string, string> = {}): Sample[] {
    return this.families.flatMap((f) => f.samples).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  }

  /** The one sample's value; throws when there is none or several. */
  value (name: string, labels: Record<string, string> = {}): number {
    const found = this.samples(name, labels)
    if (found.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`)
    return (found[0] as Sample).value
  }
}

export async function parsePrometheus (text: string): Promise<Family[]> {
  const child = spawn(PYTHON, [PARSER], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  child.stdin.end(text)
  const code = await new Promise<number | null>((resolve, reject) => { child.once('error', reject); child.once('close', resolve) })
  if (code !== 0) {
    const hint = err.includes('No module named') ? ' (install it: apt-get install python3-prometheus-client)' : ''
    throw new Error(`the Prometheus parser refused the text${hint}: ${err.trim()}`)
  }
  return JSON.parse(out) as Family[]
}

/** GET `url` (with a bearer token if given), expecting 200 and the text format; parsed. */
export async function scrape (url: string, token?: string): Promise<Scrape> {
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text}`)
  if (res.headers.get('content-type') !== 'text/plain; version=0.0.4; charset=utf-8') throw new Error(`GET ${url}: content-type ${res.headers.get('content-type') ?? ''}`)
  return new Scrape(text, await parsePrometheus(text))
}
