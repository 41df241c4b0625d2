SET 'execution.runtime-mode' = 'streaming';

CREATE TABLE transactions (id STRING, features ARRAY<FLOAT>) WITH (
  'connector' = 'kafka', 'topic' = 'transactions', 'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'sql-client', 'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset', 'format' = 'json', 'json.ignore-parse-errors' = 'true');

CREATE TABLE sql_predictions (id STRING, probabilities ARRAY<FLOAT>, model_version STRING) WITH (
  'connector' = 'kafka', 'topic' = 'sql-predictions', 'properties.bootstrap.servers' = 'kafka:9092',
  'format' = 'json');

CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (probabilities ARRAY<FLOAT>, model_version STRING)
WITH ('provider' = 'onnx', 'path' = '/models/fraud-mlp.onnx', 'batch.max-size' = '64', 'on-error' = 'skip',
      'model-version' = 'fraud-mlp-1', 'model-version-column' = 'model_version');

INSERT INTO sql_predictions
SELECT id, probabilities, model_version
FROM ML_PREDICT(TABLE transactions, MODEL fraud, DESCRIPTOR(features));
