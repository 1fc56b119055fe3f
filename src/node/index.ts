/**
 * pictale for Node: `createClient` also reads its connection settings from the environment
 * and accepts file paths, `file:` URLs, Buffers and Node streams as images.
 * @packageDocumentation
 */
import { PictaleClient, type CallOptions, type ClientOptions, type Run } from '../index'
import { DEFAULT_MAX_IMAGE_BYTES } from '../images/prepare-image'
import type { DescribeEvent, NarrateEvent, PipelineEvent } from '../schemas/events'
import type { DescribeRequest, NarrateRequest, PipelineRequest } from '../schemas/requests'
import type { DescribeResult, NarrateResult, PipelineResult, StartedRun } from '../schemas/results'
import type { Background } from '../client'
import { InvalidInputError } from '../errors/client-errors'
import { ENV_NAMES, withEnvDefaults } from './env-options'
import { readImageSource, type NodeImageInput } from './read-image-source'

export * from '../index'
export { ENV_NAMES } from './env-options'
export { readImageSource, type NodeImageInput } from './read-image-source'

/** Options of the Node `createClient`: every field optional where the environment can supply it. */
export type NodeClientOptions = Partial<ClientOptions>

type WithNodeImage<T> = Omit<T, 'image'> & { image: NodeImageInput }

/** A {@link PictaleClient} whose requests also take Node image sources. */
export interface NodePictaleClient extends PictaleClient {
  describe(request: WithNodeImage<DescribeRequest> & Background, options?: CallOptions): Promise<StartedRun>
  describe(request: WithNodeImage<DescribeRequest>, options?: CallOptions): Run<DescribeResult, DescribeEvent>
  narrate(request: NarrateRequest & Background, options?: CallOptions): Promise<StartedRun>
  narrate(request: NarrateRequest, options?: CallOptions): Run<NarrateResult, NarrateEvent>
  pipeline(request: WithNodeImage<PipelineRequest> & Background, options?: CallOptions): Promise<StartedRun>
  pipeline(request: WithNodeImage<PipelineRequest>, options?: CallOptions): Run<PipelineResult, PipelineEvent>
}

/**
 * Creates a client for Node. Options left out come from `PICTALE_BASE_URL`,
 * `PICTALE_API_KEY`, `MODAL_KEY` and `MODAL_SECRET`.
 *
 * @example
 * const client = createClient()            // PICTALE_BASE_URL=http://127.0.0.1:8000
 * const story = await client.pipeline({ image: './photo.jpg', instruction: 'A bedtime story.' })
 */
export function createClient(options: NodeClientOptions = {}): NodePictaleClient {
  const resolved = withEnvDefaults(options, process.env)
  if (resolved.baseURL === undefined) {
    throw new InvalidInputError(
      'invalid_options',
      `no server: pass options.baseURL or set ${ENV_NAMES.baseURL}`,
      'baseURL',
    )
  }
  const maxBytes = resolved.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES
  const ownResolver = options.resolveImage
  return new PictaleClient({
    ...(resolved as ClientOptions),
    resolveImage: async (image) =>
      readImageSource(ownResolver ? await ownResolver(image) : image, maxBytes),
  }) as NodePictaleClient
}
