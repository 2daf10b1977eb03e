// Package pipeline is lbsys's forecasting pipeline in the shape of TFX
// (Baylor et al. 2017, "TFX: A TensorFlow-Based Production-Scale Machine
// Learning Platform"): components with typed input and output artifacts,
// a runner that stores every artifact under a data directory by the hash
// of its content, records the lineage (run, inputs, outputs, parameters,
// metrics) in a Metadata store, and skips a component whose code version,
// parameters and input contents did not change.
//
// The standard components (Standard) are
//
//	ExampleGen → StatisticsGen → SchemaGen → ExampleValidator → Transform
//	→ Tuner → Trainer → Evaluator → Pusher
//
// with two resolvers reading the metadata: the schema in use (so drift is
// measured against what the models were built for) and the model serving
// each series (the bar a candidate must clear). The models are
// internal/forecast's. A model is pushed for a series only when it beats
// the seasonal-naive forecast and the model serving the series now.
//
// Metadata is an interface: MemoryMetadata and FileMetadata, and
// StoreMetadata in the embedded store (internal/store), which also links
// artifacts to the stored data they were read from. Source likewise:
// CSVSource and SeriesSource, and StoreSource (windows of the store's
// series with CMDB coupling, ITIL and calendar inputs); StoreSink writes
// pushed forecasts back into the store as series.
package pipeline
