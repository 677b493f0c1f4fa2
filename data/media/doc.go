// Package media streams videos frame by frame through the ffmpeg
// command-line tool (Debian package ffmpeg, installed by setup-gotch.sh):
// Reader decodes one frame at a time from an ffmpeg pipe, with its exact
// frame number and presentation time, so memory does not grow with the
// video's length; Writer encodes frames into a video file.
//
// Frame numbers count the decoded frames of the first video stream from
// 0, with no frame dropped or duplicated (-fps_mode passthrough); times
// are the frames' presentation timestamps in seconds, as ffmpeg's
// showinfo filter reports them.
package media
