import type {ChalkInstance} from 'chalk'

/**
 * Colour for a stream, or undefined for plain text: only a terminal, only
 * where chalk sees colours (it reads FORCE_COLOR, TERM, --no-color), and
 * never when NO_COLOR is set to anything but the empty string (no-color.org),
 * which chalk itself does not read.
 */
export function colourFor(stream: {isTTY?: boolean}, chalk: ChalkInstance, env: NodeJS.ProcessEnv = process.env): ChalkInstance | undefined {
  return stream.isTTY && chalk.level > 0 && !env.NO_COLOR ? chalk : undefined
}
