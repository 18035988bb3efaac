import {link, mkdir, rename, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import mime from 'mime-types'
import {isMessageId} from '../bus/message-id.js'
import type {ReceivedMessage} from '../client/message.js'

/** The extension a body of this type is saved with: mime-types' own for the type, `bin` for one it does not know. */
export function extensionOf(type: string): string {
  const extension = mime.extension(type)
  // mime-db's extensions are short alphanumerics; anything else never becomes part of a file name.
  return extension && /^[a-z0-9]{1,16}$/i.test(extension) ? extension : 'bin'
}

/**
 * `dump --save DIR`: each body, byte for byte, in a file of its own,
 * `DIR/<id>.<ext>` (as `nats sub --dump DIR` does). The id comes from the
 * server, so it names a file only when it has the message-id syntax
 * (digits, a dash, digits): anything else could climb out of DIR. A message
 * without one (the 2007 msgbus gives none) is numbered instead, never
 * overwriting a file there.
 */
export class BodySaver {
  private counter = 0
  private made: Promise<unknown> | undefined

  constructor(readonly dir: string) {}

  /** Writes the body and returns the file's path. The file appears whole: written aside, then renamed into place. */
  async save(message: ReceivedMessage): Promise<string> {
    this.made ??= mkdir(this.dir, {recursive: true})
    await this.made
    const extension = extensionOf(message.type)
    const named = message.id !== undefined && isMessageId(message.id)
    const aside = join(this.dir, `.${named ? message.id : 'unnamed'}.${extension}.part`)
    await writeFile(aside, message.body)
    if (named) {
      // The same id is the same message: saved again (a second run --since), it replaces itself.
      const path = join(this.dir, `${message.id}.${extension}`)
      await rename(aside, path)
      return path
    }

    try {
      for (;;) {
        const path = join(this.dir, `${++this.counter}.${extension}`)
        try {
          await link(aside, path)
          return path
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        }
      }
    } finally {
      await unlink(aside)
    }
  }
}
