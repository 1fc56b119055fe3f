/** Image bytes with an optional declared type (the bytes are sniffed either way). */
export interface InlineImage {
  /** Base64 text, or the raw bytes. */
  data: string | Uint8Array | ArrayBuffer
  /** e.g. `'image/png'`; informational only: the type sniffed from the bytes is what is sent. */
  mediaType?: string | undefined
}

/** An image the server fetches itself (`http(s)://`). */
export interface RemoteImage {
  url: string
}

/**
 * Every image form the default entry accepts: an `https://` or `data:` URL string,
 * `{ url }`, `{ data, mediaType }`, bytes (`Uint8Array`, `Buffer`, `ArrayBuffer`) or a
 * `Blob`/`File`. `pictale/node` adds file paths and Node streams.
 */
export type ImageInput = string | RemoteImage | InlineImage | Uint8Array | ArrayBuffer | Blob

/** The image as it travels in the request body. */
export type WireImage = string | { url: string } | { data: string; media_type: string }
