// Token secrets and their hashes. A secret is `roster_` + 32 random bytes in base64url; only its
// SHA-256 is ever stored or sent between roles. A fast, unsalted hash is right here (unlike for
// passwords): a secret has 256 bits of entropy, so nothing can be guessed from its hash by brute
// force or by a precomputed table, and a fast hash lets a gateway authenticate every request
// with one hash and one map lookup. (A bootstrap secret chosen by an operator is held to a
// minimum length for the same reason: cli.ts.)
import { createHash, randomBytes } from 'node:crypto'

export const SECRET_PREFIX = 'roster_'
/** 32 bytes: 256 bits, beyond any brute force of the hash. */
const SECRET_BYTES = 32
/** 12 bytes (96 bits) of id: unique without coordination between gateways. */
const ID_BYTES = 12

export function newSecret (): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64url')
}

export function newTokenId (): string {
  return 'tok_' + randomBytes(ID_BYTES).toString('base64url')
}

/** The hex SHA-256 of a secret, as stored. */
export function hashSecret (secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}
