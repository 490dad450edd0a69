#!/usr/bin/env ruby
# The blog-post way: Zlib::GzipReader + JSON.parse, one JSON line per record with puts.
require 'zlib'
require 'json'

ARGV.each do |path|
  Zlib::GzipReader.open(path) do |gz|
    JSON.parse(gz.read)['Records'].each { |record| puts record.to_json }
  end
end
