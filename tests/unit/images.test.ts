import { describe, expect, it } from 'vitest'
import { InvalidImageError, sniffImageType } from '../../src/index'
import { base64ToBytes, bytesToBase64 } from '../../src/images/base64'
import { prepareImage } from '../../src/images/prepare-image'
import { tokenStream } from '../../src/testing'
import { PNG_BASE64, PNG_BYTES, rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const MAX = 20 * 1024 * 1024
const bytes = (...values: (number | string)[]) =>
  Uint8Array.from(values.flatMap((v) => (typeof v === 'string' ? Array.from(v, (c) => c.charCodeAt(0)) : [v])))

const samples: [string, Uint8Array][] = [
  ['image/png', PNG_BYTES],
  ['image/jpeg', bytes(0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'JFIF')],
  ['image/webp', bytes('RIFF', 0x24, 0, 0, 0, 'WEBPVP8 ')],
  ['image/gif', bytes('GIF89a', 1, 0, 1, 0)],
  ['image/bmp', bytes('BM', 0x3a, 0, 0, 0)],
  ['image/tiff', bytes('II', 0x2a, 0, 8, 0, 0, 0)],
  ['image/tiff', bytes('MM', 0, 0x2a, 0, 0, 0, 8)],
]

describe('image sniffing', () => {
  it.each(samples)('recognises %s', (type, sample) => {
    expect(sniffImageType(sample)).toBe(type)
  })

  it.each([
    ['svg', bytes('<svg xmlns="http://www.w3.org/2000/svg">')],
    ['html', bytes('<!doctype html>')],
    ['pdf', bytes('%PDF-1.7')],
    ['riff without webp', bytes('RIFF', 0, 0, 0, 0, 'WAVE')],
    ['truncated png', PNG_BYTES.subarray(0, 4)],
  ])('refuses %s', (_, sample) => {
    expect(sniffImageType(sample)).toBeUndefined()
  })
})

describe('image encoding', () => {
  it('turns every byte form into base64 with the sniffed type', async () => {
    const expected = { data: PNG_BASE64, media_type: 'image/png' }
    expect(await prepareImage(PNG_BYTES, MAX)).toEqual(expected)
    expect(await prepareImage(PNG_BYTES.slice().buffer, MAX)).toEqual(expected)
    expect(await prepareImage(Buffer.from(PNG_BYTES), MAX)).toEqual(expected)
    expect(await prepareImage(new Blob([PNG_BYTES]), MAX)).toEqual(expected)
    expect(await prepareImage(new File([PNG_BYTES], 'a.png'), MAX)).toEqual(expected)
    expect(await prepareImage(`data:image/png;base64,${PNG_BASE64}`, MAX)).toEqual(expected)
    expect(await prepareImage({ data: PNG_BASE64, mediaType: 'image/jpeg' }, MAX)).toEqual(expected)
    expect(await prepareImage({ data: PNG_BYTES }, MAX)).toEqual(expected)
  })

  it('passes URLs through for the server to fetch', async () => {
    expect(await prepareImage('https://example.com/cat.png', MAX)).toBe('https://example.com/cat.png')
    expect(await prepareImage({ url: 'http://example.com/cat.png' }, MAX)).toEqual({ url: 'http://example.com/cat.png' })
  })

  it.each([
    ['a file path', './cat.png', 'invalid_image', /pictale\/node/],
    ['a non-http url object', { url: 'file:///etc/passwd' }, 'invalid_image', /http/],
    ['a data URL that is not base64', 'data:image/png,abc', 'invalid_image', /base64/],
    ['broken base64', { data: 'not base64!' }, 'invalid_image', /base64/],
    ['an empty buffer', new Uint8Array(0), 'invalid_image', /empty/],
    ['text bytes', new TextEncoder().encode('hello world, not an image'), 'unsupported_media_type', /PNG/],
    ['an SVG data URL', `data:image/svg+xml;base64,${btoa('<svg></svg>')}`, 'unsupported_media_type', /PNG/],
    ['a number', 42, 'invalid_image', /number/],
  ])('refuses %s', async (_, input, code, message) => {
    const error = await rejectionOf(prepareImage(input as never, MAX))
    expect(error).toBeInstanceOf(InvalidImageError)
    expect(error).toMatchObject({ code, param: 'image' })
    expect((error as Error).message).toMatch(message)
  })

  it('refuses images over maxImageBytes, in every form, without reading a Blob', async () => {
    const big = new Uint8Array(1025)
    big.set(PNG_BYTES)
    for (const input of [big, { data: bytesToBase64(big) }, `data:image/png;base64,${bytesToBase64(big)}`]) {
      expect(await rejectionOf(prepareImage(input, 1024))).toMatchObject({ code: 'image_too_large' })
    }
    const blob = new Blob([big])
    blob.arrayBuffer = () => Promise.reject(new Error('must not be read'))
    expect(await rejectionOf(prepareImage(blob, 1024))).toMatchObject({ code: 'image_too_large' })
  })

  it('encodes a 20 MiB image without overflowing the stack, byte for byte', async () => {
    const big = new Uint8Array(MAX)
    big.set(PNG_BYTES)
    for (let i = PNG_BYTES.length; i < big.length; i += 4099) big[i] = i & 0xff
    const wire = (await prepareImage(big, MAX)) as { data: string; media_type: string }
    expect(wire.media_type).toBe('image/png')
    expect(wire.data).toBe(Buffer.from(big).toString('base64'))
    expect(base64ToBytes(wire.data.slice(0, 16))).toEqual(big.subarray(0, 12))
  })

  it('a refused image sends no request', async () => {
    const server = mock({ describe: tokenStream({ route: 'describe' }) })
    const error = await rejectionOf(testClient().describe({ image: new TextEncoder().encode('GIF? no') }))
    expect(error).toBeInstanceOf(InvalidImageError)
    expect(server.requests).toHaveLength(0)
  })

  it('the client applies its maxImageBytes', async () => {
    const server = mock({ describe: tokenStream({ route: 'describe' }) })
    const error = await rejectionOf(testClient({ maxImageBytes: 10 }).describe({ image: PNG_BYTES }))
    expect(error).toMatchObject({ code: 'image_too_large' })
    expect(server.requests).toHaveLength(0)
  })
})
