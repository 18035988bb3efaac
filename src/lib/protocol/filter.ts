import type {Message} from '../bus/message.js'
import {foldCase, PatternList, PatternListError} from './pattern.js'

export interface FilterSpec {
  /** Patterns over the media type, e.g. `text/*,image/*`; case-insensitive. */
  type?: string
  /** Patterns over the sender's user name; case-sensitive. */
  sender?: string
}

export type MessageFilter = (message: Message) => boolean

/** A filter's list compiled; its PatternListError names the filter (`the type= filter: ...`). */
function compileList(name: keyof FilterSpec, list: string): PatternList {
  try {
    return new PatternList(list)
  } catch (error) {
    if (error instanceof PatternListError) throw new PatternListError(`the ${name}= filter: ${error.message}`, {cause: error})
    throw error
  }
}

/**
 * Compiles a subscription's filters once; undefined when it has none, so the
 * hot path skips the call. Throws PatternListError (pattern.ts) for a list
 * over the limits.
 */
export function compileFilter(spec: FilterSpec): MessageFilter | undefined {
  // Essences are lower-cased already (MessageInput), so folding the patterns once is enough.
  const type = spec.type ? compileList('type', foldCase(spec.type)) : undefined
  const sender = spec.sender ? compileList('sender', spec.sender) : undefined
  // A message without a sender is matched as the empty name: `sender=*` (what the 2007 clients always ask for) lets it through, `alice` or `b*` do not.
  if (type && sender) return (m) => type.matches(m.essence) && sender.matches(m.sender ?? '')
  if (type) return (m) => type.matches(m.essence)
  if (sender) return (m) => sender.matches(m.sender ?? '')
  return undefined
}

/** Both filters (either may be absent): how a subscription's own filter meets the channels the ACL lets it see. */
export function bothFilters(first: MessageFilter | undefined, second: MessageFilter | undefined): MessageFilter | undefined {
  if (!first) return second
  if (!second) return first
  return (m) => first(m) && second(m)
}
