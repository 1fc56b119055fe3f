/**
 * The models `pictale/ai` offers:
 * - `writer`: prose or a roleplay turn from text (`narrate`);
 * - `vision`: describes one picture, or answers a question about it (`describe`);
 * - `pipeline`: a picture and an instruction in, the story out (`pipeline`); the picture's
 *   description comes first, as reasoning.
 */
export type PictaleModelId = 'writer' | 'vision' | 'pipeline'

export const MODEL_IDS: readonly PictaleModelId[] = ['writer', 'vision', 'pipeline']
