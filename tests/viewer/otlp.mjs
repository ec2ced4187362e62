// otlp.mjs: check weft's OTLP/JSON export against the OpenTelemetry
// project's own encoder (@opentelemetry/otlp-transformer, pinned): the
// spans weft wrote are rebuilt as SDK spans, encoded by the project's
// JSON serializer, and must come out identical; its protobuf serializer
// must take them too.  Usage: node otlp.mjs FILE
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { JsonTraceSerializer, ProtobufTraceSerializer } from
  '@opentelemetry/otlp-transformer';

const req = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const value = v => {
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return v.arrayValue.values.map(value);
  throw new Error('unexpected value ' + JSON.stringify(v));
};
const attrs = list => {
  const o = {};
  for (const a of list) {
    assert.ok(!(a.key in o), 'duplicate attribute ' + a.key);
    o[a.key] = value(a.value);
  }
  return o;
};
const hr = ns => {
  const n = BigInt(ns);
  return [Number(n / 1000000000n), Number(n % 1000000000n)];
};
const spans = [];
for (const rs of req.resourceSpans) {
  const resource = { attributes: attrs(rs.resource.attributes) };
  for (const ss of rs.scopeSpans) {
    const scope = { name: ss.scope.name, version: ss.scope.version };
    for (const s of ss.spans) {
      assert.match(s.traceId, /^[0-9a-f]{32}$/);
      assert.match(s.spanId, /^[0-9a-f]{16}$/);
      spans.push({
        name: s.name, kind: s.kind - 1,
        spanContext: () => ({ traceId: s.traceId, spanId: s.spanId,
          traceFlags: 1 }),
        parentSpanContext: s.parentSpanId ?
          { traceId: s.traceId, spanId: s.parentSpanId, traceFlags: 1 } :
          undefined,
        startTime: hr(s.startTimeUnixNano), endTime: hr(s.endTimeUnixNano),
        attributes: attrs(s.attributes), droppedAttributesCount: 0,
        events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0,
        status: s.status, resource, instrumentationScope: scope,
      });
    }
  }
}
const theirs = JSON.parse(new TextDecoder().decode(
  JsonTraceSerializer.serializeRequest(spans)));
assert.deepStrictEqual(req, theirs);
const pb = ProtobufTraceSerializer.serializeRequest(spans);
assert.ok(pb && pb.length > 100, 'protobuf encoding');
console.log(`ok - ${spans.length} spans: the same as the OpenTelemetry ` +
  `encoder gives (JSON), ${pb.length} bytes as protobuf`);
