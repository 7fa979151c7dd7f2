// Turns Ajv's validation errors into the one-line messages of Fastify's 400 body
// ("body/port must be <= 65535"). Fastify's default formatter is kept for everything except
// four messages that would not say what is wrong: an unknown field (Ajv does not name it), a
// union of literals (one "must be equal to constant" per branch), a bare regex, and a
// discriminated union's tag (the check's `type`), which Ajv reports without the allowed values.
import type { FastifySchemaValidationError, FastifyServerOptions } from 'fastify'

type SchemaErrorDataVar = Parameters<NonNullable<FastifyServerOptions['schemaErrorFormatter']>>[1]

interface VerboseError extends FastifySchemaValidationError {
  /** Present because the gateway's Ajv runs with `verbose: true`. */
  parentSchema?: { description?: unknown }
}

export function formatValidationErrors (errors: FastifySchemaValidationError[], dataVar: SchemaErrorDataVar): Error {
  const parts: string[] = []
  let allowed: unknown[] = []
  for (const e of errors as VerboseError[]) {
    const path = dataVar + e.instancePath
    if (e.keyword === 'const') {
      // A branch of a union of literals; the anyOf error that follows reports them together.
      allowed.push(e.params.allowedValue)
      continue
    }
    if (e.keyword === 'anyOf' && allowed.length > 0) {
      parts.push(`${path} must be one of: ${allowed.map(String).join(', ')}`)
      allowed = []
      continue
    }
    if (e.keyword === 'additionalProperties') {
      parts.push(`${path} must NOT have additional properties (unknown field '${String(e.params.additionalProperty)}')`)
      continue
    }
    if (e.keyword === 'discriminator') {
      const tag = String(e.params.tag)
      const branches = (e.parentSchema as { oneOf?: Array<{ properties?: Record<string, { const?: unknown }> }> } | undefined)?.oneOf ?? []
      const values = branches.map((b) => b.properties?.[tag]?.const).filter((v) => v !== undefined).map(String)
      parts.push(e.params.error === 'mapping'
        ? `${path}/${tag} must be one of: ${values.join(', ')}`
        : `${path} must have required property '${tag}' (one of: ${values.join(', ')})`)
      continue
    }
    if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) {
      parts.push(`${path} must be one of: ${e.params.allowedValues.map(String).join(', ')}`)
      continue
    }
    const description = e.keyword === 'pattern' ? e.parentSchema?.description : undefined
    parts.push(`${path} ${e.message ?? 'is invalid'}${typeof description === 'string' ? ` (${description})` : ''}`)
  }
  if (allowed.length > 0) parts.push(`${dataVar} must be one of: ${allowed.map(String).join(', ')}`)
  return new Error(parts.join(', '))
}
