// Administrative statements for the databases of tests, benchmarks and chaos runs (create, drop,
// terminate), each on a short-lived connection of its own so that no caller keeps a session open
// on a database it drops.
import pg from 'pg'

export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow> (
  url: string, text: string, params?: unknown[]
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  await client.connect()
  try {
    return (await client.query<R>(text, params)).rows
  } finally {
    await client.end()
  }
}

/** The URL of database `name` on the server of `url`. */
export function databaseUrl (url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

export function databaseName (url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1))
}

/** Our generated names are [a-z0-9_] only; quoting still keeps a stray one from injecting SQL. */
export function quoteIdent (name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
