import {Flags} from '@oclif/core'
import {parseSize} from '../util/size.js'

/** A size flag: bytes, or a number with k, M or G (`64k`, `8MiB`). */
export const sizeFlag = Flags.custom<number>({
  parse: async (input) => parseSize(input),
  helpValue: '<size>',
})
