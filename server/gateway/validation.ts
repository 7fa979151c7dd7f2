// Turns Ajv's validation errors into the one-line messages of Fastify's 400 body
// ("body/port must be <= 65535"). Fastify's default formatter is kept for everything except
// messages that would not say what is wrong: an unknown field (Ajv does not name it), a bad key
// of a record (meta), a union of literals (one "must be equal to constant" per branch), a bare
// regex (the storable-text rule says it in words), and a discriminated union's tag (the check's
// `type`), which Ajv reports without the allowed values.
import type { FastifySchemaValidationError, FastifyServerOptions } from 'fastify'
import { STORABLE_TEXT_PREFIX, storableTextProblem } from '../protocol/model.js'
import { component } from './schemas/openapi.js'

type SchemaErrorDataVar = Parameters<NonNullable<FastifyServerOptions['schemaErrorFormatter']>>[1]

interface VerboseError extends FastifySchemaValidationError {
  /** Present because the gateway's Ajv runs with `verbose: true`. */
  parentSchema?: { description?: unknown, patternProperties?: unknown }
  /** The failing value (also from `verbose: true`). */
  data?: unknown
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
    if (e.keyword === 'additionalProperties' && e.parentSchema?.patternProperties !== undefined) {
      // A record (meta) whose key breaks the key pattern: say which key and the record's rule.
      const key = JSON.stringify(String(e.params.additionalProperty).slice(0, 80))
      const rule = typeof e.parentSchema.description === 'string' ? ` (${e.parentSchema.description})` : ''
      parts.push(`${path} has an invalid key ${key}${rule}`)
      continue
    }
    if (e.keyword === 'additionalProperties') {
      parts.push(`${path} must NOT have additional properties (unknown field '${String(e.params.additionalProperty)}')`)
      continue
    }
    if (e.keyword === 'discriminator') {
      const tag = String(e.params.tag)
      // The branches are references to named components (schemas/common.ts, the Check).
      const branches = (e.parentSchema as { oneOf?: Array<{ $ref?: string }> } | undefined)?.oneOf ?? []
      const values = branches
        .map((b) => (component(b.$ref ?? '')?.properties as Record<string, { const?: unknown }> | undefined)?.[tag]?.const)
        .filter((v) => v !== undefined).map(String)
      parts.push(e.params.error === 'mapping'
        ? `${path}/${tag} must be one of: ${values.join(', ')}`
        : `${path} must have required property '${tag}' (one of: ${values.join(', ')})`)
      continue
    }
    if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) {
      parts.push(`${path} must be one of: ${e.params.allowedValues.map(String).join(', ')}`)
      continue
    }
    if (e.keyword === 'pattern' && String(e.params.pattern).startsWith(STORABLE_TEXT_PREFIX)) {
      parts.push(`${path} ${storableTextProblem(String(e.params.pattern), e.data)}`)
      continue
    }
    const description = e.keyword === 'pattern' ? e.parentSchema?.description : undefined
    parts.push(`${path} ${e.message ?? 'is invalid'}${typeof description === 'string' ? ` (${description})` : ''}`)
  }
  if (allowed.length > 0) parts.push(`${dataVar} must be one of: ${allowed.map(String).join(', ')}`)
  return new Error(parts.join(', '))
}

export type Validate = ((data: unknown, ...rest: unknown[]) => unknown) & { errors?: unknown, schemaEnv?: unknown }

/**
 * Wraps a coercing (query string, path) validator so that a number that coerced to ±Infinity
 * is a 400: Ajv turns `?minRevision=Infinity` (or `1e400`) into the number Infinity and then
 * skips every numeric check (its `maximum` and `integer` tests only look at finite numbers),
 * so the schema alone let it through. Top-level values and arrays are what query strings and
 * paths hold.
 */
export function finiteNumbersOnly (validate: Validate): Validate {
  const wrapped: Validate = (data, ...rest) => {
    const ok = validate(data, ...rest)
    if (ok !== true || data === null || typeof data !== 'object') return ok === false ? { error: validate.errors } : ok
    for (const [key, value] of Object.entries(data)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'number' && !Number.isFinite(v)) {
          return { error: [{ instancePath: `/${key}`, keyword: 'type', params: {}, message: 'must be a finite number' }] }
        }
      }
    }
    return true
  }
  wrapped.schemaEnv = validate.schemaEnv
  return wrapped
}
