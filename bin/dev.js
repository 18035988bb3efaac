#!/usr/bin/env node
// Runs the commands from src/ through tsx (oclif registers it in development mode).
import {execute} from '@oclif/core'

await execute({development: true, dir: import.meta.url})
