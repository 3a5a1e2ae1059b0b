// Type helpers for the generated conformance check (tests/stripe_conformance/typecheck.py).
//
// Each JSON value the sandbox sent is checked twice against Stripe's published types:
// once as an object literal assigned to its type (`const s: Stripe.Charge = {...}`), and once
// node by node with the helpers below, which name every excess, missing or mistyped field at
// once (an object literal's error stops at the first excess property and at four missing ones).
// A field that is not in the type makes everything under it `unknown` (it is reported once).
import type Stripe from 'stripe';

type Scalar = string | number | boolean | null | undefined;

/** The object members of a declared type: expandable ids, scalars, arrays and null left out. */
export type Obj<T> = unknown extends T ? unknown : Exclude<T, Scalar | readonly unknown[]>;
/** The array members of a declared type. */
export type Arr<T> = unknown extends T ? unknown : Extract<T, readonly unknown[]>;
/** The element type of the array members of a declared type. */
export type Item<T> = unknown extends T ? unknown : Arr<T> extends readonly (infer U)[] ? U : never;
export type AllKeys<T> = T extends unknown ? keyof T : never;

type ByObject<O, V> = [V] extends [never] ? O : [Extract<O, { object: V }>] extends [never] ? O : Extract<O, { object: V }>;
type ByDeleted<O, D> = D extends true
  ? [Extract<O, { deleted: true }>] extends [never] ? O : Extract<O, { deleted: true }>
  : [Exclude<O, { deleted: true }>] extends [never] ? O : Exclude<O, { deleted: true }>;
type ByType<O, E> = [E] extends [never] ? O : [Extract<O, { type: E }>] extends [never] ? O : Extract<O, { type: E }>;
/** A JSON object's type: the object members of its declared type, narrowed where the declared
 * type is a union by the node's own `object` value, `deleted` flag (Customer | DeletedCustomer)
 * and, for an event, its `type` (the member of the Stripe.Event union). */
export type Node<T, V = never, D = false, E = never> = unknown extends T
  ? unknown
  : ByType<ByDeleted<ByObject<Obj<T>, V>, D>, E>;
/** A field's declared type in a node; `unknown` when the node's type has no such field. */
export type Field<N, K extends string> = unknown extends N
  ? unknown
  : [K] extends [AllKeys<N>]
    ? N extends unknown ? (K extends keyof N ? N[K] : never) : never
    : unknown;

type RequiredKeys<N> = N extends unknown ? { [P in keyof N]-?: {} extends Pick<N, P> ? never : P }[keyof N] : never;
/** The keys sent that the node's type does not have (none for a node whose type is already
 * reported as wrong: unknown, or never). */
export type Excess<N, K> = unknown extends N ? never : [N] extends [never] ? never : Exclude<K, AllKeys<N>>;
/** The keys the node's type requires that were not sent. */
export type Missing<N, K> = unknown extends N ? never : Exclude<RequiredKeys<N>, K>;
type Reported<T> = unknown extends T ? true : [T] extends [never] ? true : false;
export type NotObject<T> = Reported<T> extends true ? never : [Obj<T>] extends [never] ? 'an object where the type has none' : never;
export type NotArray<T> = Reported<T> extends true ? never : [Arr<T>] extends [never] ? 'an array where the type has none' : never;

/** Fails to compile (naming T) unless T is never. */
export declare function none<T extends never>(): void;
/** Fails to compile unless the value fits T. */
export declare function is<T>(value: T): void;

/** A field's type as JSON carries it: the SDK turns decimal strings into `Stripe.Decimal` objects. */
export type Wire<T> = T extends Stripe.Decimal ? string : T;
/** A decimal string in an object literal, as the SDK hands it over. */
export declare function dec(value: string): Stripe.Decimal;

/** The member of the `Stripe.Event` union for one event type (never for a type Stripe does not have). */
export type EventOf<T extends string> = Extract<Stripe.Event, { type: T }>;
export type NotEventType<T extends string> = [EventOf<T>] extends [never] ? 'an event type this API version does not have' : never;

/** An event as delivered: its published type, except `previous_attributes`, which Stripe sends
 * with only the changed keys of a nested hash (the published `Partial<T>` is one level deep):
 * the node checks look at it field by field against the object's type instead. */
export type Delivered<E> = E extends { data: infer D }
  ? Omit<E, 'data'> & { data: Omit<D, 'previous_attributes'> & { previous_attributes?: { [key: string]: unknown } } }
  : never;

/** True when field K exists in T and is optional (how the types show an includable field). */
export type OptionalField<T, K extends keyof T> = {} extends Pick<T, K> ? true : false;
