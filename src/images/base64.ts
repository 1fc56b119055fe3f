// btoa/atob exist in browsers, Node ≥ 16, Deno and Bun. Bytes go through a binary string in
// 32 KiB slices: String.fromCharCode(...bytes) on a whole 20 MB image would overflow the stack.

const SLICE = 0x8000

/** Base64 of `bytes` (standard alphabet, padded). */
export function bytesToBase64(bytes: Uint8Array): string {
  const parts: string[] = []
  for (let start = 0; start < bytes.length; start += SLICE) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(start, start + SLICE) as unknown as number[]))
  }
  return btoa(parts.join(''))
}

/** The bytes of a base64 text (throws on characters outside the alphabet). */
export function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Whether `text` is padded standard base64 (whitespace not allowed). */
export function isBase64(text: string): boolean {
  return text.length % 4 === 0 && BASE64.test(text)
}

/** Decoded length of a valid padded base64 text. */
export function base64DecodedLength(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0
  return (text.length / 4) * 3 - padding
}
