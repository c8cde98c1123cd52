import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { assert } from "../../src/lib/assert.js";

/**
 * A @grpc/grpc-js client of a protobuf-es service, with no .proto loading at run time: grpc-js's
 * generic client constructor gets one entry per method, whose (de)serializers are protobuf-es's
 * binary codec for the method's generated message types. Answers keep protobuf-es types (bigint ids,
 * Uint8Array bytes), so a test compares them exactly like those of the Connect clients.
 */
export interface GrpcJsClient {
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    metadata?: grpc.Metadata,
  ): Promise<MessageShape<O>>;
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    request: MessageInitShape<I>,
  ): grpc.ClientReadableStream<MessageShape<O>>;
  close(): void;
}

export function createGrpcJsClient(service: DescService, baseUrl: string): GrpcJsClient {
  const definition: Record<string, grpc.MethodDefinition<MessageShape<DescMessage>, MessageShape<DescMessage>>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (data: Buffer) => fromBinary(method.input, data),
      responseSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (data: Buffer) => fromBinary(method.output, data),
    };
  }
  const Constructor = grpc.makeGenericClientConstructor(definition, service.name);
  const client = new Constructor(new URL(baseUrl).host, grpc.credentials.createInsecure());
  const methodOf = (method: DescMethod): ((...args: unknown[]) => unknown) => {
    const found = (client as unknown as Record<string, unknown>)[method.name];
    assert(typeof found === "function", () => `grpc-js client of ${service.typeName}: no method ${method.name}`);
    return found.bind(client) as (...args: unknown[]) => unknown;
  };
  return {
    unary: <I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      request: MessageInitShape<I>,
      metadata = new grpc.Metadata(),
    ) =>
      new Promise<MessageShape<O>>((resolve, reject) => {
        methodOf(method)(create(method.input, request), metadata, (error: grpc.ServiceError | null, response: MessageShape<O>) =>
          error === null ? resolve(response) : reject(error),
        );
      }),
    serverStream: <I extends DescMessage, O extends DescMessage>(method: DescMethodServerStreaming<I, O>, request: MessageInitShape<I>) =>
      methodOf(method)(create(method.input, request)) as grpc.ClientReadableStream<MessageShape<O>>,
    close: () => client.close(),
  };
}

/** A call to a method the server may not have, with raw bytes both ways (for unknown-method tests). */
export function callRawUnary(baseUrl: string, path: string, body: Uint8Array): Promise<Buffer> {
  const client = new grpc.Client(new URL(baseUrl).host, grpc.credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (bytes: Uint8Array) => Buffer.from(bytes),
      (bytes: Buffer) => bytes,
      body,
      (error, response) => (error !== null ? reject(error) : response === undefined ? reject(new Error("no response")) : resolve(response)),
    );
  }).finally(() => client.close());
}
