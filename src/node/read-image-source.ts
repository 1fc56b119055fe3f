import { readFile, stat } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { InvalidImageError } from '../errors/client-errors'
import type { ImageInput } from '../images/image-input'

const REMOTE_OR_DATA = /^(https?:|data:)/i

/** Anything Node can read an image from, besides the default entry's forms. */
// A Node Readable (fs.createReadStream, a request body) is an AsyncIterable of Buffers: typed
// structurally, so these declarations need no @types/node in the user's project.
export type NodeImageInput = ImageInput | URL | AsyncIterable<Uint8Array | string>

/**
 * Reads Node-only image sources into bytes: a file path, a `file:` URL (string or `URL`), or
 * a Node `Readable`/async iterable of chunks. Other inputs pass through unchanged. Reading
 * stops with `image_too_large` as soon as `maxBytes` is passed.
 */
export async function readImageSource(input: unknown, maxBytes: number): Promise<ImageInput> {
  if (input instanceof URL) {
    if (input.protocol !== 'file:') return input.href
    return readImageFile(fileURLToPath(input), maxBytes)
  }
  if (typeof input === 'string' && !REMOTE_OR_DATA.test(input)) {
    return readImageFile(input.startsWith('file:') ? fileURLToPath(input) : input, maxBytes)
  }
  if (isAsyncIterable(input) && !(input instanceof Uint8Array)) return readChunks(input, maxBytes)
  return input as ImageInput
}

async function readImageFile(path: string, maxBytes: number): Promise<Uint8Array> {
  try {
    const info = await stat(path)
    if (!info.isFile()) throw new InvalidImageError('invalid_image', `${path} is not a file`)
    if (info.size > maxBytes) throw tooLarge(info.size, maxBytes)
    return await readFile(path)
  } catch (error) {
    if (error instanceof InvalidImageError) throw error
    const reason = (error as NodeJS.ErrnoException).code ?? String(error)
    throw new InvalidImageError('invalid_image', `cannot read image file ${path} (${reason})`, { cause: error })
  }
}

async function readChunks(source: AsyncIterable<unknown>, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) {
      throw new InvalidImageError('invalid_image', 'image streams must yield bytes, not text')
    }
    size += chunk.length
    if (size > maxBytes) throw tooLarge(size, maxBytes)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value
}

function tooLarge(size: number, maxBytes: number): InvalidImageError {
  return new InvalidImageError(
    'image_too_large',
    `the image is over ${maxBytes} bytes (at least ${size}; maxImageBytes)`,
  )
}
