import type {Message, Subscriber} from './message.js'

/** A message's fan-out that did not fit in one slice: the subscribers as they were when it began, and how far it got. */
export class SlicedFanOut {
  handed = 0
  private next = 0

  constructor(
    readonly message: Message,
    private readonly subscribers: Subscriber[],
    readonly done: (handed: number) => void,
  ) {}

  get finished(): boolean {
    return this.next === this.subscribers.length
  }

  /** Hands the message to up to `budget` more subscribers; returns what is left of the budget. */
  step(budget: number): number {
    const {message, subscribers} = this
    const end = Math.min(subscribers.length, this.next + budget)
    for (let i = this.next; i < end; i++) if (subscribers[i].deliver(message)) this.handed++
    budget -= end - this.next
    this.next = end
    return budget
  }
}
