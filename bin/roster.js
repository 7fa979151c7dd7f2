#!/usr/bin/env node
// The `roster` command. Roster is written in TypeScript and runs from source through tsx, so a
// clone works right after `npm install` with no build step.
import { register } from 'tsx/esm/api'

register()
await import('../server/cli.ts')
