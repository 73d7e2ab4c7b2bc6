// Persistence of the national directory, behind interfaces: only this folder knows SQL.
// - The snapshot: the last imported national extraction, replaced atomically by an import.
// - The publication state: what of our own mailboxes has been published to the national directory.
import type { DirectoryEntry, ResourceKind } from '../../directory-model/entry.js';
import type { Clause } from '../../directory-model/match.js';

export type { Clause };

export interface AddressCondition {
  /** FHIR string search on mailbox-mss: default starts-with, :exact, :contains (R4 §3.1.1.5.3 / search.html#string). */
  mode: 'prefix' | 'exact' | 'contains';
  /** Lower-cased address or part of one. */
  value: string;
}

export interface IndexQuery {
  clauses: Clause[];
  address?: AddressCondition;
  /** Only entries whose mailbox is carried by one of these resources. */
  kinds?: ResourceKind[];
}

export interface SearchPage {
  /** Matching entries in rank order (tier, then alphabetical). */
  entries: DirectoryEntry[];
  /** True when more entries may match beyond `limit`. */
  more: boolean;
  /**
   * The search stopped at a cap on the rows it reads (reader.ts SCAN_CAP, SCAN_ROWS) before its
   * candidates ran out: asking again with a larger limit reads the same rows (narrow the query).
   */
  capped?: boolean;
}

export interface Rejection {
  line: number;
  reason: string;
}

export interface SnapshotInfo {
  /** Changes at each import (a new file); lets readers notice a new snapshot. */
  generation: string;
  importedAt: string;
  source: string;
  /** Name of the .txt inside a ZIP, when the source was a ZIP. */
  sourceEntry: string | null;
  linesRead: number;
  imported: number;
  rejected: number;
  added: number;
  removed: number;
  changed: number;
  /** The first rejections (line numbers and reasons), at most 1000. */
  rejections: Rejection[];
  durationMs: number;
  /** Where the import's time went (milliseconds), for benchmarks; absent in older snapshots. */
  phases?: ImportPhases;
}

/**
 * Phases of an import: reading and parsing (the reading thread, until the last line is handed
 * over), inserting rows (the SQLite thread, overlapping the reading), building the indexes after
 * the load, comparing with the previous snapshot, and the durable switch (fsync, rename).
 */
export interface ImportPhases {
  readMs: number;
  insertMs: number;
  indexMs: number;
  compareMs: number;
  swapMs: number;
}

/** Read side of the current snapshot. Methods resolve immediately when there is no snapshot yet. */
export interface DirectorySnapshotReader {
  info(): Promise<SnapshotInfo | undefined>;
  /** Up to `limit` entries matching every condition, in rank order. */
  search(q: IndexQuery, limit: number): Promise<SearchPage>;
  byAddress(address: string): Promise<DirectoryEntry | undefined>;
  /** Entries of one practitioner ("Identification nationale PP" key), optionally of one resource kind. */
  byPractitioner(ppKey: string, limit: number): Promise<DirectoryEntry[]>;
  /** Entries of one structure; `kind` narrows to the mailboxes carried by that resource. */
  byStructure(stKey: string, kind: ResourceKind | undefined, limit: number): Promise<DirectoryEntry[]>;
  count(): Promise<number>;
  close(): Promise<void>;
}

/** Builds a new snapshot beside the current one; `commit` switches to it in one step. */
export interface SnapshotWriter {
  /** Adds an entry; its index terms are those of entryTokens (directory-model/tokens.ts). */
  add(entry: DirectoryEntry, lineNo: number): void;
  /** Resolves when the writer can take more lines (bounded memory when it works in another thread). */
  drain?(): Promise<void>;
  /** Finishes the snapshot (indexes, duplicates, comparison with the previous one) and switches to it. */
  commit(meta: Omit<SnapshotInfo, 'generation' | 'importedAt' | 'imported' | 'added' | 'removed' | 'changed' | 'durationMs' | 'phases'>, onPhase?: (phase: string) => void): Promise<SnapshotInfo>;
  /** Drops the unfinished snapshot; the previous one stays in force. */
  abort(): Promise<void>;
}

/** What was last published of one of our mailboxes. */
export interface PublishedMailbox {
  address: string;
  resourceType: ResourceKind;
  /** Conditional URL (query part) of the resource, e.g. identifier=urn:oid:1.2.250.1.71.4.2.1|810001234567. */
  condition: string;
  /** The ContactPoint as published (JSON). */
  telecom: string;
  publishedAt: string;
}

export interface PublicationStore {
  listPublished(): Promise<PublishedMailbox[]>;
  /** Records a successful publication of these mailboxes (upsert), and the removal of others, in one transaction. */
  recordPublished(upserts: Omit<PublishedMailbox, 'publishedAt'>[], removed: string[]): Promise<void>;
  close(): Promise<void>;
}
