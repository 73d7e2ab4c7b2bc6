// Message semantics for the IMAP server: computed once per stored message by analyzeMessage()
// (persist the returned MessageInfo as JSON), then used by FETCH, SEARCH, SORT and THREAD without
// re-parsing. Output matches Dovecot 2.3 (the reference of the imaptest conformance scripts);
// see README.md in this folder for the semantics and the deliberate choices.
export type { Addr, Envelope, MessageInfo, Part, PartWire, SectionSpec, Sexp, TransferDecoding } from './types.js';
export { MESSAGE_INFO_VERSION } from './types.js';
export { analyzeMessage, hasEightBitHeader } from './analyze.js';
export { bodyStructure } from './bodystructure.js';
export { envelopeSexp } from './envelope.js';
export { utf8Lenient } from './text.js';
export { binaryContent, sectionBytes, sectionRange } from './section.js';
export { partStructureAt } from './part-structure.js';
export { storableForm, type StorableForm } from './storable.js';
export { headerValues, searchableText, type HeaderSearchMode } from './search.js';
export { normalizeForSearch } from './sortkeys.js';
