import {makeScryptHash} from '../server/access/password-hash.js'

/** The first line of a stream (without its line end), as soon as it has come; the whole stream if it has no newline. */
export function readLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const done = () => {
      stream.off('data', onData)
      stream.off('end', done)
      stream.off('error', reject)
      stream.pause()
      const newline = text.indexOf('\n')
      resolve((newline < 0 ? text : text.slice(0, newline)).replace(/\r$/, ''))
    }

    const onData = (chunk: Buffer | string) => {
      text += chunk.toString()
      if (text.includes('\n')) done()
    }

    stream.on('data', onData)
    stream.once('end', done)
    stream.once('error', reject)
  })
}

/**
 * `msgbus serve --hash-password`: a password on stdin (one line), a scrypt
 * hash for the ACL's password field on stdout.
 */
export async function hashPasswordFromStdin(stdin: NodeJS.ReadableStream = process.stdin, stdout: NodeJS.WritableStream = process.stdout): Promise<void> {
  const password = await readLine(stdin)
  if (password === '') throw new Error('no password on standard input (one line: printf %s "$PASSWORD" | msgbus serve --hash-password)')
  stdout.write(`${await makeScryptHash(password)}\n`)
}
