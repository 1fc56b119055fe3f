import { InvalidImageError } from '../errors/client-errors'
import type { ImageInput, WireImage } from './image-input'
import { base64DecodedLength, base64ToBytes, bytesToBase64, isBase64 } from './base64'
import { SNIFF_BYTES, sniffImageType } from './sniff-media-type'

/** Default cap on image bytes, the same as the server's (20 MiB). */
export const DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024

const HTTP_URL = /^https?:\/\//i
const DATA_URL = /^data:([^;,]*)((?:;[^;,]*)*),/i

/**
 * Checks an image and turns it into its wire form: URLs travel as they are (the server fetches
 * them), everything else as `{ data, media_type }` with the type sniffed from the bytes.
 * Throws {@link InvalidImageError} for anything the server would refuse by its bytes or size.
 */
export async function prepareImage(input: ImageInput, maxBytes: number): Promise<WireImage> {
  if (typeof input === 'string') return prepareString(input, maxBytes)
  if (input instanceof Uint8Array) return encodeBytes(input, maxBytes)
  if (input instanceof ArrayBuffer) return encodeBytes(new Uint8Array(input), maxBytes)
  if (ArrayBuffer.isView(input)) {
    const view = input as ArrayBufferView
    return encodeBytes(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), maxBytes)
  }
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    checkSize(input.size, maxBytes)
    return encodeBytes(new Uint8Array(await input.arrayBuffer()), maxBytes)
  }
  if (typeof input === 'object' && input !== null) {
    if ('url' in input && typeof input.url === 'string') {
      if (!HTTP_URL.test(input.url)) {
        throw new InvalidImageError('invalid_image', 'image.url must be an http(s):// URL')
      }
      return { url: input.url }
    }
    if ('data' in input) {
      const { data } = input
      if (typeof data === 'string') return checkBase64(data, maxBytes)
      if (data instanceof Uint8Array) return encodeBytes(data, maxBytes)
      if (data instanceof ArrayBuffer) return encodeBytes(new Uint8Array(data), maxBytes)
      throw new InvalidImageError('invalid_image', 'image.data must be base64 text or bytes')
    }
  }
  throw new InvalidImageError(
    'invalid_image',
    `unsupported image input (${describe(input)}): pass an https:// or data: URL, { url }, ` +
      '{ data, mediaType }, bytes or a Blob; file paths and streams need pictale/node',
  )
}

function prepareString(input: string, maxBytes: number): WireImage {
  if (HTTP_URL.test(input)) return input
  const match = DATA_URL.exec(input)
  if (match) {
    if (!/;base64$/i.test(match[2] ?? '')) {
      throw new InvalidImageError('invalid_image', 'image data: URLs must be base64-encoded')
    }
    return checkBase64(input.slice(match[0].length), maxBytes)
  }
  throw new InvalidImageError(
    'invalid_image',
    'an image string must be an http(s):// URL or a data:image/…;base64 URL ' +
      '(for file paths, import createClient from pictale/node)',
  )
}

function checkBase64(data: string, maxBytes: number): WireImage {
  if (!isBase64(data)) {
    throw new InvalidImageError('invalid_image', 'image data is not valid padded base64')
  }
  checkSize(base64DecodedLength(data), maxBytes)
  const head = base64ToBytes(data.slice(0, Math.ceil(SNIFF_BYTES / 3) * 4))
  return { data, media_type: sniffOrThrow(head) }
}

function encodeBytes(bytes: Uint8Array, maxBytes: number): WireImage {
  checkSize(bytes.length, maxBytes)
  const mediaType = sniffOrThrow(bytes)
  return { data: bytesToBase64(bytes), media_type: mediaType }
}

function checkSize(size: number, maxBytes: number): void {
  if (size === 0) throw new InvalidImageError('invalid_image', 'the image is empty')
  if (size > maxBytes) {
    throw new InvalidImageError(
      'image_too_large',
      `the image is ${size} bytes, over the ${maxBytes}-byte limit (maxImageBytes)`,
    )
  }
}

function sniffOrThrow(bytes: Uint8Array): string {
  const type = sniffImageType(bytes)
  if (type === undefined) {
    throw new InvalidImageError(
      'unsupported_media_type',
      'the bytes are not a PNG, JPEG, WebP, GIF, BMP or TIFF image',
    )
  }
  return type
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value !== 'object') return typeof value
  return (value as object).constructor?.name ?? 'object'
}
