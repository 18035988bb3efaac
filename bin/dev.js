#!/usr/bin/env node
// Runs the commands from src/ through tsx (oclif registers it in development mode).
// CommonJS, as bin/run.js (bin/package.json).
'use strict'
// The project's folder, not bin/: its package.json (bin/package.json only says CommonJS).
require('@oclif/core').execute({development: true, dir: require('node:path').join(__dirname, '..')})
