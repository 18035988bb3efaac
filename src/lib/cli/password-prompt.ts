import {closeSync, openSync} from 'node:fs'
import {ReadStream, WriteStream} from 'node:tty'

/** The controlling terminal, read and written apart from stdin and stdout (which may be pipes), as ssh and sudo do; undefined when there is none. */
function openTerminal(): {input: ReadStream; output: WriteStream} | undefined {
  let readFd: number | undefined
  try {
    readFd = openSync('/dev/tty', 'r')
    const writeFd = openSync('/dev/tty', 'w')
    return {input: new ReadStream(readFd), output: new WriteStream(writeFd)}
  } catch {
    if (readFd !== undefined) closeSync(readFd)
    return undefined
  }
}

export class PromptInterrupted extends Error {}

/**
 * Asks for a password on the terminal, without echo: the line typed, or
 * undefined when there is no terminal to ask on. Backspace edits; Ctrl-C
 * rejects with PromptInterrupted; Ctrl-D or Enter ends the line.
 */
export async function promptPassword(question: string): Promise<string | undefined> {
  const terminal = openTerminal()
  if (!terminal) return undefined
  const {input, output} = terminal
  output.write(question)
  input.setRawMode(true)
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = ''
      input.on('data', (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') return resolve(typed)
          if (ch === '\u0003') return reject(new PromptInterrupted('password prompt interrupted'))
          if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('')
          else if (ch >= ' ') typed += ch
        }
      })
      input.on('error', reject)
    })
  } finally {
    input.setRawMode(false)
    output.write('\n')
    input.destroy()
    output.destroy()
  }
}
