// Package stats holds the order statistics that the benchmarks, the lab and
// the tests report: Median and Percentile (nearest rank) of a sample of
// numbers or durations. They leave the sample as it was.
//
// It is shared so that a "p99" or a "median" means the same in every table
// and log line juxta prints (bench, juxta lab matrix, the hostile-peer
// tests). It has no JXTA or libp2p counterpart.
package stats
